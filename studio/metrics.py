"""Live numbers of one run, all measured: per-segment FPS, overall FPS, time to the first frame
(ready on the server; the page adds when it is on screen), GPU memory."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from helios.segment import Segment, StepProgress


@dataclass
class RunMetrics:
    started: float = field(default_factory=time.perf_counter)
    segments: int = 0
    total_segments: int = 0
    step: StepProgress | None = None
    frames: int = 0
    segment_fps: list[float] = field(default_factory=list)
    segment_frames: list[int] = field(default_factory=list)
    first_frame_s: float | None = None
    prompts: tuple[tuple[str, float], ...] = ()
    elapsed_s: float = 0.0
    state: str = "starting"

    def on_step(self, progress: StepProgress) -> None:
        self.step = progress
        self.total_segments = progress.segments
        self.elapsed_s = time.perf_counter() - self.started

    def on_segment(self, segment: Segment) -> None:
        self.elapsed_s = time.perf_counter() - self.started
        if self.first_frame_s is None:
            self.first_frame_s = self.elapsed_s
        self.segments = segment.index + 1
        self.total_segments = segment.count
        self.frames += len(segment.frames)
        self.segment_fps.append(segment.fps)
        self.segment_frames.append(len(segment.frames))
        self.prompts = segment.prompts

    @property
    def overall_fps(self) -> float | None:
        return self.frames / self.elapsed_s if self.frames and self.elapsed_s > 0 else None

    def to_html(self) -> str:
        return f'<div class="metrics">{self._summary()}</div>'

    def fps_table(self) -> pd.DataFrame:
        """Per-segment FPS for the page's plot (axes, hover values)."""
        return pd.DataFrame({"segment": range(1, len(self.segment_fps) + 1), "FPS": [round(v, 2) for v in self.segment_fps]})

    def _summary(self) -> str:
        step = self.step
        rows = [
            ("status", self.state),
            ("segment", f"{min(self.segments + 1, self.total_segments or 1)} of {self.total_segments or '?'}"
             if self.state == "generating" else f"{self.segments} of {self.total_segments or '?'}"),
            ("step", f"{step.step} of {step.steps}" if step else "-"),
            ("last segment", f"{self.segment_fps[-1]:.1f} FPS" if self.segment_fps else "-"),
            ("overall", f"{self.overall_fps:.1f} FPS" if self.overall_fps else "-"),
            ("first frame ready", f"{self.first_frame_s:.2f} s after the run started" if self.first_frame_s is not None else "-"),
            ("frames", str(self.frames)),
            ("prompt", " + ".join(f"{shortened(p)} ({w:.0%})" for p, w in self.prompts) or "-"),
            ("GPU memory", gpu_memory()),
        ]
        cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f'<table class="metrics-table">{cells}</table>'


def shortened(prompt: str, limit: int = 120) -> str:
    """Metrics are re-sent with every step: a long prompt would ride along each time."""
    return prompt if len(prompt) <= limit else prompt[: limit - 1].rstrip() + "…"


def gpu_memory() -> str:
    if not torch.cuda.is_available():
        return "no GPU (CPU run)"
    used = torch.cuda.memory_allocated() / 2**30
    peak = torch.cuda.max_memory_allocated() / 2**30
    return f"{used:.1f} GiB in use, {peak:.1f} GiB peak"
