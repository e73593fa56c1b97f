"""One run of the app: the engine's events turned into streamed clips, the finished MP4 and live metrics.

Gradio-free, so it is tested directly; the page only renders what `updates` yields. The run's events are consumed
in the caller's thread (which is where the engine decodes), so a segment crosses one queue on its way here.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from helios.media import encode_clip, join_videos
from helios.recipe import sidecar
from helios.record import RunRecord
from helios.request import Continuation
from helios.run import Run
from helios.segment import Segment, StepProgress
from helios.timeline import PromptTimeline

from .metrics import RunMetrics, RunState


@dataclass(frozen=True)
class RunUpdate:
    metrics: RunMetrics
    clip: Path | None = None
    video: Path | None = None
    final: bool = False


class StreamedRun:
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
        self.record = RunRecord(run)
        """What the run measured; made anew as it starts."""
        self._discarded = False

    def stop(self) -> bool:
        """True if this call stopped a running generation."""
        if self.run.cancelled or self.metrics.state != RunState.GENERATING:
            return False
        self.run.cancel()
        return True

    def apply_timeline(self, timeline: PromptTimeline) -> None:
        self.run.set_timeline(timeline)

    @property
    def continuation(self) -> Continuation | None:
        return self.run.continuation if self.video is not None else None

    def updates(self) -> Iterator[RunUpdate]:
        self.metrics.state = RunState.GENERATING
        clips = []
        record = self.record = RunRecord(self.run)
        try:
            try:
                for event in self.run:
                    if isinstance(event, StepProgress):
                        self.metrics.on_step(event)
                        yield RunUpdate(self.metrics)
                    elif isinstance(event, Segment):
                        record.on_segment(event)
                        self.metrics.on_segment(event, record.first_frame_s)
                        clips.append(encode_clip(event.frames, self.workdir / f"segment-{event.index:04d}.mp4"))
                        yield RunUpdate(self.metrics, clip=clips[-1])
                        record.measure(event)
            except BaseException:
                self.run.cancel()
                self.metrics.state = RunState.FAILED
                raise
            self.metrics.state = RunState.STOPPED if self.run.cancelled else RunState.DONE
            yield RunUpdate(self.metrics, video=self._finish(clips, record), final=True)
        finally:
            if self._discarded:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _finish(self, clips: list[Path], record: RunRecord) -> Path | None:
        """The MP4 (the recipe in its metadata) and the recipe beside it."""
        if not clips:
            return None
        recipe = record.recipe().to_json()
        video = join_videos([self.before, *clips] if self.before else clips, self.workdir / "helios.mp4", recipe)
        sidecar(video).write_text(recipe, encoding="utf-8")
        return video

    @property
    def video(self) -> Path | None:
        """The finished MP4: everything this run showed, after the video it continued."""
        path = self.workdir / "helios.mp4"
        return path if self.metrics.state in (RunState.DONE, RunState.STOPPED) and path.exists() else None

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.workdir.glob("*") if f.is_file())

    def cleanup(self) -> None:
        """Remove the run's files once the page no longer needs them; a run still generating removes them as it ends."""
        self._discarded = True
        if self.metrics.state != RunState.GENERATING:
            shutil.rmtree(self.workdir, ignore_errors=True)
