"""One run of the app: the engine in a worker thread, its events turned into streamed clips and live metrics.

Everything here is Gradio-free, so it is tested directly; the UI only renders what `updates` yields.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from helios.control import GenerationControl, StepProgress
from helios.engine import Engine
from helios.media import VideoWriter, encode_clip
from helios.request import GenerationRequest
from helios.segment import Segment
from helios.timeline import PromptTimeline

from .metrics import RunMetrics

_DONE = object()


@dataclass(frozen=True)
class RunUpdate:
    metrics: RunMetrics
    clip: Path | None = None
    video: Path | None = None
    final: bool = False


class StudioRun:
    """Streams one request; `stop` and `apply_timeline` may be called from other threads while it runs."""

    def __init__(self, engine: Engine, request: GenerationRequest, prelude: np.ndarray | None = None):
        self.engine = engine
        self.request = request
        self.prelude = prelude
        self.workdir = Path(tempfile.mkdtemp(prefix="helios-run-"))
        self.metrics = RunMetrics()
        self._events: queue.Queue = queue.Queue()
        self.control = GenerationControl(on_step=self._events.put)

    def stop(self) -> bool:
        """True if this call stopped a running generation."""
        if self.control.cancelled or self.metrics.state != "generating":
            return False
        self.control.cancel()
        return True

    def apply_timeline(self, timeline: PromptTimeline) -> None:
        timeline.check(self.request.settings.num_segments)
        self.control.set_timeline(timeline)

    def _work(self) -> None:
        try:
            for segment in self.engine.generate(self.request, self.control):
                self._events.put(segment)
        except BaseException as exc:  # handed to the consumer, which raises it where the user sees it
            self._events.put(exc)
        self._events.put(_DONE)

    def updates(self) -> Iterator[RunUpdate]:
        self.engine.plan(self.request)
        self.metrics.state = "generating"
        worker = threading.Thread(target=self._work, daemon=True, name="helios-generate")
        worker.start()
        writer = VideoWriter(self.workdir / "helios.mp4")
        if self.prelude is not None:
            writer.add(self.prelude)
        try:
            while (event := self._events.get()) is not _DONE:
                if isinstance(event, BaseException):
                    raise event
                if isinstance(event, StepProgress):
                    self.metrics.on_step(event)
                    yield RunUpdate(self.metrics)
                elif isinstance(event, Segment):
                    self.metrics.on_segment(event)
                    writer.add(event.frames)
                    clip = encode_clip(event.frames, self.workdir / f"segment-{event.index:04d}.ts")
                    yield RunUpdate(self.metrics, clip=clip)
        except BaseException:
            self.control.cancel()
            writer.abort()
            self.metrics.state = "failed"
            raise
        finally:
            worker.join()
        self.metrics.state = "stopped" if self.control.cancelled else "done"
        video = writer.close() if writer.count else None
        if video is None:
            writer.abort()
        yield RunUpdate(self.metrics, video=video, final=True)

    @property
    def video(self) -> Path | None:
        """The finished MP4 (everything this run showed, after the video it continued): the context for 'continue'."""
        path = self.workdir / "helios.mp4"
        return path if self.metrics.state in ("done", "stopped") and path.exists() else None

    def cleanup(self) -> None:
        """Remove the run's files once the page no longer needs them; Gradio serves its own copies."""
        if self.metrics.state != "generating":
            shutil.rmtree(self.workdir, ignore_errors=True)
