"""What the page's buttons do, per browser session: start, continue, stop and retime runs. Gradio-free: handlers
raise HeliosError, and the page turns it into words on screen."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Iterator

from helios.engine import Engine
from helios.errors import BadInput, Cancelled

from .form import Form, build_request, timeline_from_rows
from .session import RunUpdate, StudioRun


class Sessions:
    """The latest run of each browser session; one session cannot touch another's."""

    def __init__(self, engine: Engine, ready: threading.Event):
        self.engine = engine
        self.ready = ready
        self._runs: dict[str, StudioRun] = {}
        self._queued: dict[str, int] = {}
        self._stop_queued: set[str] = set()
        self._lock = threading.Lock()

    def get(self, session: str) -> StudioRun | None:
        with self._lock:
            return self._runs.get(session)

    def _replace(self, session: str, run: StudioRun) -> None:
        with self._lock:
            previous = self._runs.get(session)
            self._runs[session] = run
        if previous is not None:
            previous.cleanup()

    def queued(self, session: str) -> None:
        """A Generate or Continue of this session is waiting in the queue: a Stop now keeps it from starting."""
        with self._lock:
            self._queued[session] = self._queued.get(session, 0) + 1

    def _dequeued(self, session: str) -> None:
        with self._lock:
            self._queued[session] = max(self._queued.get(session, 0) - 1, 0)
            stopped = session in self._stop_queued and not self._queued[session]
            if stopped:
                self._stop_queued.discard(session)
        if stopped:
            raise Cancelled("Stopped before it started: nothing was generated.")

    def generate(self, session: str, form: Form, randomize: bool = False) -> tuple[int, Iterator[RunUpdate]]:
        """The seed used, and the run's updates; the request is checked before anything starts."""
        self._dequeued(session)
        if randomize:
            form = replace(form, seed=random.randrange(2**31))
        self.ready.wait()
        run = StudioRun(self.engine.start(build_request(form)))
        self._replace(session, run)
        return form.seed, run.updates()

    def extend(self, session: str, form: Form) -> Iterator[RunUpdate]:
        """Continue the session's last finished run from the state it ended in: the frames a longer run gives."""
        self._dequeued(session)
        previous = self.get(session)
        if previous is not None and previous.metrics.state == "generating":
            raise BadInput("A video is still being generated: wait for it or stop it, then continue.")
        if previous is None or previous.continuation is None:
            raise BadInput("Nothing to continue yet: generate a video first.")
        run = StudioRun(self.engine.start(build_request(form, after=previous.continuation)), before=previous.video)
        self._replace(session, run)
        return run.updates()

    def stop(self, session: str) -> bool:
        """Stops the session's running generation, or else keeps its queued ones from starting."""
        run = self.get(session)
        if run is not None and run.stop():
            return True
        with self._lock:
            if self._queued.get(session):
                self._stop_queued.add(session)
                return True
        return False

    def apply_timeline(self, session: str, rows, unit: str, crossfade) -> int | None:
        """The 1-based segment the new timeline applies from; None when nothing is running."""
        run = self.get(session)
        if run is None or run.metrics.state != "generating":
            return None
        run.apply_timeline(timeline_from_rows(rows, unit, crossfade))
        running = run.metrics.step.segment if run.metrics.step else 0
        return running + 2

    def forget(self, session: str) -> None:
        with self._lock:
            run = self._runs.pop(session, None)
        if run is not None:
            run.stop()
            run.cleanup()
