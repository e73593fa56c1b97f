"""What one run measured, kept as its events pass, and the recipe it ends with: the CLI and the app keep one each.

First frame, here and everywhere: seconds from the start of the run's iteration (validation done, nothing denoised)
until its first segment's frames are handed out, decoded, on the host."""

from __future__ import annotations

import time

from .measures import VideoMeasures
from .recipe import Recipe, recipe_for, segment_timings, timings_of
from .run import Run
from .segment import Segment


class RunRecord:
    def __init__(self, run: Run):
        """Made as the run's iteration starts."""
        self.run = run
        stream = run.engine.model.block_stream
        self._moved_before = stream.bytes_moved if stream else None
        self.started = time.perf_counter()
        self.first_frame_s: float | None = None
        self.frames = 0
        self.segments: list[dict] = []
        self.measuring = VideoMeasures()

    def on_segment(self, segment: Segment) -> None:
        if self.first_frame_s is None:
            self.first_frame_s = time.perf_counter() - self.started
        self.frames += len(segment.frames)
        self.segments.append(segment_timings(segment))

    def measure(self, segment: Segment) -> None:
        """The segment's flicker and drift, ~8 ms a 384x640 frame on one CPU core: called once the segment is out,
        so measuring never delays a clip or a file write."""
        self.measuring.add(segment.frames)

    def measures(self) -> dict:
        """Flicker at each boundary between this run's segments and each segment's drift from its first."""
        return self.measuring.as_dict()

    def recipe(self) -> Recipe:
        """The recipe with the run's measured timings, as of now (call it once the run has ended)."""
        model = self.run.engine.model
        stream = model.block_stream
        moved = stream.bytes_moved - self._moved_before if stream else None
        elapsed = time.perf_counter() - self.started
        timings = timings_of(self.segments, self.first_frame_s, elapsed, self.frames, model.device, moved)
        return recipe_for(model, self.run.request, timings, self.measures(), engine=self.run.engine_name)
