"""One run of the app: the engine's events turned into streamed clips, the finished MP4 and live metrics.

Gradio-free, so it is tested directly; the page only renders what `updates` yields. The run's events are consumed
in the caller's thread (which is where the engine decodes), so a segment crosses one queue on its way here.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from helios.media import VideoWriter, encode_clip, join_videos
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

    A continued run's MP4 is the earlier MP4 with the new segments joined on without re-encoding the earlier part.
    """

    def __init__(self, run: Run, before: Path | None = None):
        self.run = run
        self.workdir = Path(tempfile.mkdtemp(prefix="helios-run-"))
        self.before = None
        if before is not None:
            self.before = self.workdir / "before.mp4"
            shutil.copyfile(before, self.before)
        self.metrics = RunMetrics()

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
        writer = VideoWriter(self.workdir / "segments.mp4")
        try:
            for event in self.run:
                if isinstance(event, StepProgress):
                    self.metrics.on_step(event)
                    yield RunUpdate(self.metrics)
                elif isinstance(event, Segment):
                    self.metrics.on_segment(event)
                    writer.add(event.frames)
                    clip = encode_clip(event.frames, self.workdir / f"segment-{event.index:04d}.ts")
                    yield RunUpdate(self.metrics, clip=clip)
        except BaseException:
            self.run.cancel()
            writer.abort()
            self.metrics.state = "failed"
            raise
        self.metrics.state = "stopped" if self.run.cancelled else "done"
        video = self._finish(writer)
        yield RunUpdate(self.metrics, video=video, final=True)

    def _finish(self, writer: VideoWriter) -> Path | None:
        if not writer.count:
            writer.abort()
            return None
        made = writer.close()
        if self.before is None:
            return made.rename(self.workdir / "helios.mp4")
        return join_videos(self.before, made, self.workdir / "helios.mp4")

    @property
    def video(self) -> Path | None:
        """The finished MP4: everything this run showed, after the video it continued."""
        path = self.workdir / "helios.mp4"
        return path if self.metrics.state in ("done", "stopped") and path.exists() else None

    def cleanup(self) -> None:
        """Remove the run's files once the page no longer needs them; Gradio serves its own copies."""
        if self.metrics.state != "generating":
            shutil.rmtree(self.workdir, ignore_errors=True)
