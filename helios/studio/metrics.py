"""Live numbers of one run, all measured: per-segment FPS, overall FPS, time to the first frame
(ready on the server; the page adds when it is on screen), GPU memory."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd
import torch

from helios.limits import FPS, FRAMES_PER_SEGMENT
from helios.segment import Segment, StepProgress

from .playback import SEGMENT_S


class RunState(StrEnum):
    """Where a run of the page is; the page's script reads it from the metrics' `data-state`."""

    STARTING = "starting"
    GENERATING = "generating"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


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
    """As `helios.record` defines it, for the whole of this app's run."""
    prompts: tuple[tuple[str, float], ...] = ()
    elapsed_s: float = 0.0
    state: RunState = RunState.STARTING
    steps: tuple[int, ...] | None = None
    """The run's steps per pyramid stage (None without a pyramid)."""
    made: list[float] = field(default_factory=list)
    """When each segment's frames reached the app (wall clock), before its clip is encoded."""
    first_estimate_s: float | None = None
    """A later segment's time as the first alone tells it: its denoising scaled to a later segment's steps (the
    first of a run may have twice as many), plus its decode."""

    def on_step(self, progress: StepProgress) -> None:
        self.step = progress
        self.total_segments = progress.total_segments
        self.elapsed_s = time.perf_counter() - self.started

    def on_segment(self, segment: Segment, first_frame_s: float | None) -> None:
        self.elapsed_s = time.perf_counter() - self.started
        self.made.append(time.time())
        self.first_frame_s = first_frame_s
        if not self.segment_fps and self.step and segment.frames.size:
            first_steps = self.step.steps
            later_steps = sum(self.steps) if self.steps else first_steps
            t = segment.timings
            seconds = t.denoise_s * later_steps / first_steps + t.decode_s
            self.first_estimate_s = seconds * FRAMES_PER_SEGMENT / len(segment.frames)
        self.segments = segment.index + 1
        self.total_segments = segment.total_segments
        self.frames += len(segment.frames)
        self.segment_fps.append(segment.fps)
        self.segment_frames.append(len(segment.frames))
        self.prompts = segment.prompts

    @property
    def overall_fps(self) -> float | None:
        return self.frames / self.elapsed_s if self.frames and self.elapsed_s > 0 else None

    @property
    def segment_s(self) -> float | None:
        """Seconds the engine takes per segment: the median of the measured ones after the first, or the first's
        estimate while it is alone."""
        later = self.segment_fps[1:]
        if not later:
            return self.first_estimate_s or (FRAMES_PER_SEGMENT / self.segment_fps[0] if self.segment_fps else None)
        return FRAMES_PER_SEGMENT / sorted(later)[len(later) // 2]

    def to_html(self, live: str = "") -> str:
        """The table, with what the page's player needs as data: where its stream is (`live`, studio/live_stream.py),
        what its start waits for (studio/playback.py) and when each segment was made (epoch ms, for latency)."""
        segment_s = self.segment_s
        data = f'data-state="{self.state}" data-total="{self.total_segments}"'
        data += f' data-made="{",".join(f"{t * 1000:.0f}" for t in self.made)}"'
        if live:
            data += f' data-live="{html.escape(live)}"'
        if segment_s:
            data += f' data-segment-s="{segment_s:.3f}" data-rtf="{SEGMENT_S / segment_s:.3f}"'
        return f'<div class="metrics" {data}>{self._summary()}</div>'

    def fps_table(self) -> pd.DataFrame:
        """Per-segment FPS for the page's plot, beside the real-time line."""
        return fps_series({"this run": self.segment_fps})

    def real_time_advice(self) -> str | None:
        """After a run slower than real time, the steps preset that would be real time here, from this run's
        measured segments (the amplified first one aside): a segment's time scales with its steps per stage."""
        if (
            self.state not in (RunState.DONE, RunState.STOPPED)
            or not self.segment_s
            or not self.steps
            or len(set(self.steps)) != 1
        ):
            return None
        fps = FRAMES_PER_SEGMENT / self.segment_s
        if fps >= FPS:
            return None
        measured, stages = self.steps[0], len(self.steps)
        now = ",".join(map(str, self.steps))
        projected = {k: fps * measured / k for k in range(measured - 1, 0, -1)}
        fast = [k for k, f in projected.items() if f >= FPS]
        if fast:
            k = fast[0]
            return (f"{fps:.1f} FPS at {now}, below real time ({FPS} FPS): {','.join([str(k)] * stages)} would play in "
                    f"real time on this GPU (about {projected[k]:.0f} FPS, from this run's segment times).")
        if measured == 1:
            return (f"{fps:.1f} FPS at {now}, below real time ({FPS} FPS), with the fewest steps: a smaller size would "
                    "be faster.")
        return (f"{fps:.1f} FPS at {now}, below real time ({FPS} FPS); no steps preset reaches it on this GPU "
                f"({','.join(['1'] * stages)}: about {fps * measured:.0f} FPS, from this run's segment times).")

    def _summary(self) -> str:
        step = self.step
        rows = [
            ("status", self.state),
            (
                "segment",
                f"{min(self.segments + 1, self.total_segments or 1)} of {self.total_segments or '?'}"
                if self.state == RunState.GENERATING
                else f"{self.segments} of {self.total_segments or '?'}",
            ),
            ("step", f"{step.step} of {step.steps}" if step else "-"),
            ("last segment", f"{self.segment_fps[-1]:.1f} FPS" if self.segment_fps else "-"),
            ("overall", f"{self.overall_fps:.1f} FPS" if self.overall_fps else "-"),
            (
                "first frame ready",
                f"{self.first_frame_s:.2f} s after the run started" if self.first_frame_s is not None else "-",
            ),
            ("frames", str(self.frames)),
            ("prompt", " + ".join(f"{shortened(p)} ({w:.0%})" for p, w in self.prompts) or "-"),
            ("GPU memory", gpu_memory()),
        ]
        advice = self.real_time_advice()
        if advice:
            rows.append(("real time", advice))
        cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f'<table class="metrics-table">{cells}</table>'


REAL_TIME = f"real time ({FPS} FPS)"


def fps_series(runs: dict[str, list[float]]) -> pd.DataFrame:
    """Per-segment FPS of each run, segments as categories, and a line at real time across them."""
    count = max((len(v) for v in runs.values()), default=0)
    rows = [(str(n), round(fps, 2), name) for name, values in runs.items() for n, fps in enumerate(values, 1)]
    rows += [(str(n), float(FPS), REAL_TIME) for n in range(1, count + 1)]
    return pd.DataFrame(rows, columns=["segment", "FPS", "run"])


def shortened(prompt: str, limit: int = 120) -> str:
    """Metrics are re-sent with every step: a long prompt would ride along each time."""
    return prompt if len(prompt) <= limit else prompt[: limit - 1].rstrip() + "…"


def gpu_memory() -> str:
    if not torch.cuda.is_available():
        return "no GPU (CPU run)"
    used = torch.cuda.memory_allocated() / 2**30
    peak = torch.cuda.max_memory_allocated() / 2**30
    return f"{used:.1f} GiB in use, {peak:.1f} GiB peak"
