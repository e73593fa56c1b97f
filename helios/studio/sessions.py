"""What the page's buttons do, per browser session: start, continue, stop and retime runs. Gradio-free: handlers
raise HeliosError, and the page turns it into words on screen."""

from __future__ import annotations

import filecmp
import random
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from helios.engine import Engine
from helios.errors import BadInput, Cancelled
from helios.lora.file import LoraFile
from helios.reference import run_with
from helios.run import Run

from . import history
from .compare import Comparison, SideSettings
from .form import Form, build_request, timeline_from_rows
from .live_session import LiveSession, LiveState
from .metrics import RunState
from .models import ModelChoices
from .settings import StudioSettings
from .streamed_run import RunUpdate, StreamedRun


class Sessions:
    """The latest run of each browser session; one session cannot touch another's."""

    def __init__(
        self, engine: Engine, ready: threading.Event, settings: StudioSettings = StudioSettings(), clock=time.monotonic,
        root: Path | None = None, choices: ModelChoices | None = None,
    ):
        """`root`: where runs keep their files; inside Gradio's cache folder, Gradio serves them without a copy.
        `choices`: the models a comparison may run on (by default the engine's own and the catalog's)."""
        self.engine = engine
        self.choices = choices or ModelChoices(engine)
        self.root = root
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self.ready = ready
        self.settings = settings
        self.clock = clock
        self._runs: dict[str, StreamedRun] = {}
        self._seen: dict[str, float] = {}
        self._cancel_next: dict[str, int] = {}
        self._history: dict[str, list[StreamedRun]] = {}
        self._comparisons: dict[str, Comparison] = {}
        self._live: dict[str, LiveSession] = {}
        self._pads: dict[str, list[str]] = {}
        self._loras: dict[str, tuple[LoraFile, ...]] = {}
        """Each session's uploaded LoRA adapters, beside the app's own (`settings.loras`)."""
        self._lock = threading.Lock()

    def sweep(self) -> None:
        """Release idle sessions, then the least recently used finished runs while the files exceed the cap."""
        now = self.clock()
        with self._lock:
            idle = [
                s
                for s, seen in self._seen.items()
                if now - seen > self.settings.idle_release_s
                and (s not in self._runs or self._runs[s].metrics.state != RunState.GENERATING)
                and (s not in self._live or self._live[s].state != LiveState.RUNNING)
            ]
        for session in idle:
            self.forget(session)
        with self._lock:
            finished = sorted(
                (self._seen.get(s, 0.0), -age, s, run)
                for s, runs in self._history.items()
                for age, run in enumerate(runs)
                if run.metrics.state != RunState.GENERATING
            )
            total = sum(run.disk_bytes() for runs in self._history.values() for run in runs)
        for *_, session, run in finished:
            if total <= self.settings.disk_cap_bytes:
                break
            total -= run.disk_bytes()
            self._drop(session, run)

    def history(self, session: str) -> list[StreamedRun]:
        """The session's runs, newest first; the first may still be generating."""
        with self._lock:
            return list(self._history.get(session, ()))

    def _drop(self, session: str, run: StreamedRun) -> None:
        with self._lock:
            runs = self._history.get(session, [])
            if run in runs:
                runs.remove(run)
            if self._runs.get(session) is run:
                del self._runs[session]
        run.cleanup()

    def get(self, session: str) -> StreamedRun | None:
        with self._lock:
            return self._runs.get(session)

    def _replace(self, session: str, run: StreamedRun) -> None:
        """The new run becomes the session's current one; the previous ones stay in its history, up to `runs_kept`."""
        with self._lock:
            self._runs[session] = run
            self._seen[session] = self.clock()
            runs = self._history.setdefault(session, [])
            runs.insert(0, run)
            dropped = runs[self.settings.runs_kept:]
            del runs[self.settings.runs_kept:]
        for old in dropped:
            old.cleanup()
        self.sweep()

    def _starting(self, session: str) -> None:
        """A Generate or Continue of this session leaves the queue: it is refused if a Stop reached it while queued."""
        with self._lock:
            cancel = self._cancel_next.get(session, 0)
            if cancel:
                self._cancel_next[session] = cancel - 1
        if cancel:
            raise Cancelled("Stopped before it started: nothing was generated.")

    def _own_files_only(self, session: str, form: Form) -> None:
        """A run's file given as an input must be one of this session's runs'. Gradio copies an input file into a
        folder of its own before the handler sees it, so a copy is recognized by its bytes."""
        for name, value in (("image", form.image), ("video", form.video)):
            path = Path(value) if isinstance(value, (str, Path)) and value else None
            if path is not None and path.is_file() and self._owner_of(path) not in (None, session):
                raise BadInput(f"That {name} is another session's file: upload one of your own.")

    def _owner_of(self, path: Path) -> str | None:
        """The session whose run wrote this file (or an exact copy of it), if any."""
        size = path.stat().st_size
        with self._lock:
            kept = [(s, f) for s, runs in self._history.items() for run in runs for f in history.files(run)]
        for owner, file in kept:
            if path.resolve() == file.resolve() or (
                file.exists() and file.stat().st_size == size and filecmp.cmp(file, path, shallow=False)
            ):
                return owner
        return None

    def generate(self, session: str, form: Form, randomize: bool = False) -> tuple[int, Iterator[RunUpdate]]:
        """The seed used, and the run's updates; the request is checked before anything starts."""
        self._starting(session)
        self._own_files_only(session, form)
        if randomize:
            form = replace(form, seed=random.randrange(2**31))
        self.ready.wait()
        _, updates = self._begin(session, Run(self.engine, self._request(session, form)))
        return form.seed, updates

    def compare(self, session: str, form: Form, a: SideSettings, b: SideSettings) -> Comparison:
        """A and B over the form's shared inputs (an upload read once). Both requests, and what each side's model
        needs, are checked before either starts: a side that cannot run here is refused in words."""
        self._starting(session)
        self._own_files_only(session, form)
        self.ready.wait()
        first = self._request(session, a.applied_to(form))
        uploads_read = replace(b.applied_to(form), image=None, video=None)
        second = replace(self._request(session, uploads_read), image=first.image, video=first.video)
        for side, request in ((a, first), (b, second)):
            self.choices.plan(side.model)
            run_with(self.engine, request, side.model.engine)
        comparison = Comparison(
            [(a.model, first), (b.model, second)], self.choices, lambda run: self._begin(session, run)
        )
        with self._lock:
            self._comparisons[session] = comparison
        return comparison

    def last_comparison(self, session: str) -> Comparison | None:
        with self._lock:
            return self._comparisons.get(session)

    def _begin(self, session: str, run: Run, before: Path | None = None) -> tuple[StreamedRun, Iterator[RunUpdate]]:
        """The session's new current run, in its history; its updates keep the session active."""
        studio = StreamedRun(run, before, self.root)
        self._replace(session, studio)
        return studio, self._touching(session, studio.updates())

    def extend(self, session: str, form: Form) -> Iterator[RunUpdate]:
        """Continue the session's last finished run from the state it ended in: the frames a longer run gives."""
        self._starting(session)
        previous = self.get(session)
        if previous is not None and previous.metrics.state == RunState.GENERATING:
            raise BadInput("A video is still being generated: wait for it or stop it, then continue.")
        if previous is None or previous.continuation is None:
            raise BadInput("Nothing to continue yet: generate a video first.")
        run = Run(self.engine, self._request(session, form, previous.continuation))
        return self._begin(session, run, previous.video)[1]

    def _request(self, session: str, form: Form, after=None):
        return build_request(form, after, self.engine.options.limits, self.loras(session))

    def loras(self, session: str) -> tuple[LoraFile, ...]:
        """The app's adapters, then the session's: the order of the timeline's strength columns."""
        with self._lock:
            return self.settings.loras + self._loras.get(session, ())

    def adapters(self, session: str) -> tuple[str, ...]:
        return tuple(f.name for f in self.loras(session))

    def set_loras(self, session: str, paths: list[str], strength: float) -> tuple[LoraFile, ...]:
        """The session's uploaded adapters from now on (none: the app's alone), each checked against the model."""
        loras = tuple(LoraFile.of(Path(p), strength) for p in paths or [])
        self.engine.model.lora.check(loras)
        names = [f.name for f in (*self.settings.loras, *loras)]
        if len(set(names)) < len(names):
            raise BadInput("Two LoRA adapters share a name (their files' stem): rename one of the files.")
        with self._lock:
            self._loras[session] = loras
        return loras

    def _touching(self, session: str, updates: Iterator[RunUpdate]) -> Iterator[RunUpdate]:
        """A session is active while its run streams: idle time counts from its last update; a finished run sweeps."""
        for update in updates:
            self._touch(session)
            yield update
        self.sweep()

    def _touch(self, session: str) -> None:
        with self._lock:
            if session in self._runs:
                self._seen[session] = self.clock()

    def stop(self, session: str, waiting: int = 0) -> bool:
        """Stops the session's running generation and keeps its `waiting` queued ones (Generate or Continue, counted
        in the app's queue by the caller) from starting; False if there was neither."""
        self._touch(session)
        run = self.get(session)
        running = run is not None and run.stop()
        if waiting:
            with self._lock:
                self._cancel_next[session] = waiting
        return running or waiting > 0

    def apply_timeline(self, session: str, rows, unit: str, crossfade) -> int | None:
        """The 1-based segment the new timeline applies from; None when nothing is running."""
        run = self.get(session)
        if run is None or run.metrics.state != RunState.GENERATING:
            return None
        run.apply_timeline(timeline_from_rows(rows, unit, crossfade, self.adapters(session)))
        running = run.metrics.step.segment if run.metrics.step else 0
        return running + 2

    def live_start(self, session: str, form: Form, pads: list[str]) -> LiveSession:
        """A new live stream for the session, its request checked before anything runs; one at a time per session."""
        self._own_files_only(session, form)
        current = self._live_of(session)
        if current is not None and current.state == LiveState.RUNNING:
            raise BadInput("A live stream is already playing in this session: steer it, or stop it first.")
        self.ready.wait()
        request = self._request(session, form)
        quota = self.settings.live_recording_bytes
        live = LiveSession(lambda r: Run(self.engine, r), request, self._live_root(), quota)
        with self._lock:
            old, self._live[session] = self._live.get(session), live
            self._pads[session] = pads
            self._seen[session] = self.clock()
        if old is not None:
            old.close()
        return live

    def live(self, session: str) -> LiveSession:
        live = self._live_of(session)
        if live is None:
            raise BadInput("This session has no live stream: start one in the Live tab first.")
        self.touch(session)
        return live

    def _live_of(self, session: str) -> LiveSession | None:
        with self._lock:
            return self._live.get(session)

    def _live_root(self) -> Path:
        return self.root if self.root is not None else Path(tempfile.gettempdir())

    def live_pads(self, session: str, pads: list[str]) -> None:
        with self._lock:
            self._pads[session] = pads

    def live_pad(self, session: str, number, pads: list[str] | None = None) -> str:
        """The prompt of pad `number` (1-9): of `pads` as the page shows them, else of the session's copy."""
        with self._lock:
            pads = pads if pads is not None else self._pads.get(session, [])
        if not isinstance(number, (int, float)) or number != int(number) or not 1 <= number <= 9:
            raise BadInput(f"There is no pad {number}: the pads are numbered 1 to 9.")
        prompt = pads[int(number) - 1] if int(number) <= len(pads) else ""
        if not prompt:
            raise BadInput(f"Pad {int(number)} is empty: write its prompt in the pads table first.")
        return prompt

    def touch(self, session: str) -> None:
        """A session is active while its live stream plays or it steers: idle time counts from then."""
        with self._lock:
            self._seen[session] = self.clock()

    def forget(self, session: str) -> None:
        with self._lock:
            live = self._live.pop(session, None)
            self._pads.pop(session, None)
            self._loras.pop(session, None)
        if live is not None:
            live.close()
        with self._lock:
            run = self._runs.pop(session, None)
            runs = self._history.pop(session, [])
            self._seen.pop(session, None)
            self._cancel_next.pop(session, None)
            self._comparisons.pop(session, None)
        if run is not None:
            run.stop()
        for old in runs:
            old.cleanup()
