"""What a run hands out, in order: its progress between denoising steps, and each decoded segment with the prompts
it used and how long it took."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class StepProgress:
    segment: int
    total_segments: int
    step: int
    steps: int


@dataclass(frozen=True)
class SegmentTimings:
    denoise_s: float
    decode_s: float
    total_s: float


@dataclass(frozen=True)
class Segment:
    index: int
    total_segments: int
    frames: np.ndarray
    frame_start: int
    prompts: tuple[tuple[str, float], ...]
    timings: SegmentTimings

    @property
    def frame_end(self) -> int:
        return self.frame_start + len(self.frames)

    @property
    def fps(self) -> float:
        return len(self.frames) / self.timings.total_s if self.timings.total_s > 0 else float("inf")


class Stopwatch:
    """Marks points in device order; on CUDA they are events, so marking never waits for the GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._marks: list = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    @property
    def last_event(self):
        return self._marks[-1]

    def seconds(self) -> list[float]:
        """Durations between consecutive marks; call after the work is known to be done."""
        if self.cuda:
            self._marks[-1].synchronize()
            return [a.elapsed_time(b) / 1000 for a, b in zip(self._marks, self._marks[1:])]
        return [b - a for a, b in zip(self._marks, self._marks[1:])]
