"""One run of the app: the engine's events turned into streamed clips, the finished MP4 and live metrics.

Gradio-free, so it is tested directly; the page only renders what `updates` yields. The run's events are consumed
in the caller's thread (which is where the engine decodes), so a segment crosses one queue on its way here.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from helios.media import encode_clip, join_videos
from helios.recipe import recipe_for, segment_timings, sidecar, timings_of
from helios.request import Continuation
from helios.run import Run
from helios.segment import Segment, StepProgress
from helios.timeline import PromptTimeline

from .metrics import RunMetrics


@dataclass(frozen=True)
class RunUpdate:
    metrics: RunMetrics
    clip: Path | None = None
    video: Path | None = None
    final: bool = False


class StudioRun:
    """Streams one engine run; `stop` and `apply_timeline` may be called from other threads while it runs.

    Each segment is encoded once, as the clip the page streams; the MP4 is those clips (after the MP4 a continued
    run started from) joined without re-encoding.
    """

    def __init__(self, run: Run, before: Path | None = None, root: Path | None = None):
        """The run's files go in a folder named as unguessably as a session token: Gradio serves them to whoever
        has the name, and only this session is given it."""
        self.run = run
        self.workdir = Path(root or tempfile.gettempdir()) / f"helios-run-{secrets.token_urlsafe(24)}"
        self.workdir.mkdir(mode=0o700)
        self.before = None
        if before is not None:
            self.before = self.workdir / "before.mp4"
            shutil.copyfile(before, self.before)
        self.metrics = RunMetrics(steps=run.request.settings.pyramid_steps)
        self._discarded = False

    def stop(self) -> bool:
        """True if this call stopped a running generation."""
        if self.run.cancelled or self.metrics.state != "generating":
            return False
        self.run.cancel()
        return True

    def apply_timeline(self, timeline: PromptTimeline) -> None:
        self.run.set_timeline(timeline)

    @property
    def continuation(self) -> Continuation | None:
        return self.run.continuation if self.video is not None else None

    def updates(self) -> Iterator[RunUpdate]:
        self.metrics.state = "generating"
        clips, timings = [], []
        start = time.perf_counter()
        try:
            try:
                for event in self.run:
                    if isinstance(event, StepProgress):
                        self.metrics.on_step(event)
                        yield RunUpdate(self.metrics)
                    elif isinstance(event, Segment):
                        self.metrics.on_segment(event)
                        timings.append(segment_timings(event))
                        clips.append(encode_clip(event.frames, self.workdir / f"segment-{event.index:04d}.mp4"))
                        yield RunUpdate(self.metrics, clip=clips[-1])
            except BaseException:
                self.run.cancel()
                self.metrics.state = "failed"
                raise
            self.metrics.state = "stopped" if self.run.cancelled else "done"
            yield RunUpdate(self.metrics, video=self._finish(clips, timings, time.perf_counter() - start), final=True)
        finally:
            if self._discarded:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _finish(self, clips: list[Path], timings: list[dict], elapsed_s: float) -> Path | None:
        """The MP4 (the recipe in its metadata) and the recipe beside it."""
        if not clips:
            return None
        model = self.run.engine.model
        measured = timings_of(timings, self.metrics.first_frame_s, elapsed_s, self.metrics.frames, model.device)
        recipe = recipe_for(model, self.run.request, measured).to_json()
        video = join_videos([self.before, *clips] if self.before else clips, self.workdir / "helios.mp4", recipe)
        sidecar(video).write_text(recipe, encoding="utf-8")
        return video

    @property
    def video(self) -> Path | None:
        """The finished MP4: everything this run showed, after the video it continued."""
        path = self.workdir / "helios.mp4"
        return path if self.metrics.state in ("done", "stopped") and path.exists() else None

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.workdir.glob("*") if f.is_file())

    def cleanup(self) -> None:
        """Remove the run's files once the page no longer needs them; a run still generating removes them as it ends."""
        self._discarded = True
        if self.metrics.state != "generating":
            shutil.rmtree(self.workdir, ignore_errors=True)
