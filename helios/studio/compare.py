"""Settings A and B over the same inputs, run one after the other on the shared GPU, and what they measured and
made, side by side. Gradio-free: the page renders the tables, the plot and the files."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import pandas as pd

from helios.difference import VideoDifference, video_difference
from helios.measures import columns
from helios.recipe import sidecar
from helios.run import Run

from . import history
from .form import Form
from .metrics import RunState, fps_series
from .streamed_run import RunUpdate, StreamedRun

SIDES = ("A", "B")
MEASURES = ["measure", "A", "B", "B − A"]
SEGMENT_COLUMNS = ["segment", "PSNR A vs B (dB)", "SSIM A vs B", "flicker A", "flicker B", "brightness drift A",
                   "brightness drift B"]
"""Flicker is at the boundary into the segment (1: like any step of the video); drift is from the first segment."""


@dataclass(frozen=True)
class SideSettings:
    """What each side of a comparison sets; the uploads, length, resolution and time unit are shared."""

    rows: list
    crossfade: int
    steps: str
    seed: int

    def applied_to(self, form: Form) -> Form:
        return replace(form, rows=self.rows, crossfade=self.crossfade, steps=self.steps, seed=self.seed)


class Comparison:
    """`updates` runs A, then B if A finished, yielding (side, update); once both are done `difference` is set and
    the tables describe them."""

    def __init__(self, runs: list[Run], begin: Callable[[Run], tuple[StreamedRun, Iterator[RunUpdate]]]):
        """`begin`: the session's way to start a run (its history, its idle time)."""
        self._pending = runs
        self._begin = begin
        self.runs: list[StreamedRun] = []
        self.difference: VideoDifference | None = None

    def updates(self) -> Iterator[tuple[str, RunUpdate]]:
        for side, run in zip(SIDES, self._pending):
            studio, updates = self._begin(run)
            self.runs.append(studio)
            for update in updates:
                yield side, update
            if studio.metrics.state != RunState.DONE:
                return
        a, b = self.runs
        self.difference = video_difference(a.video, b.video, a.metrics.segment_frames, b.workdir / "difference.mp4")

    def measures(self) -> list[list]:
        """Each run's overall FPS, time to its first frame, peak GPU memory, frames, worst flicker and drift by its end,
        and B's difference from A."""
        measured = [columns(r.record.measures()) for r in self.runs]
        rows = []
        for name, values in (
            ("FPS", [r.metrics.overall_fps for r in self.runs]),
            ("first frame ready (s)", [r.metrics.first_frame_s for r in self.runs]),
            ("peak GPU memory (GiB)", [_peak_gib(r) for r in self.runs]),
            ("frames", [r.metrics.frames for r in self.runs]),
            ("worst flicker at a boundary", [m["flicker_max"] for m in measured]),
            ("brightness drift by the end", [m["drift_brightness"] for m in measured]),
            ("sharpness by the end (first = 1)", [m["drift_sharpness"] for m in measured]),
        ):
            a, b = (values + [None, None])[:2]
            delta = b - a if a is not None and b is not None else None
            rows.append([name, *(_shown(v) for v in (a, b, delta))])
        return rows

    def per_segment(self) -> list[list]:
        """One row a segment: how alike A and B are, and each one's flicker into it and drift from its start."""
        if self.difference is None:
            return []
        a, b = (r.record.measures() for r in self.runs)
        rows = []
        for n, (db, similarity) in enumerate(zip(self.difference.segment_psnr_db, self.difference.segment_ssim)):
            flicker = [m["flicker"][n - 1] if 0 < n <= len(m["flicker"]) else None for m in (a, b)]
            brightness = [m["drift"][n]["brightness"] if n < len(m["drift"]) else None for m in (a, b)]
            rows.append([n + 1, "identical" if math.isinf(db) else round(db, 2), round(similarity, 4),
                         *(_shown(v) for v in (*flicker, *brightness))])
        return rows

    def flicker_series(self) -> pd.DataFrame:
        """Flicker at each boundary, one series per run, for the page's plot."""
        return pd.DataFrame([dict(boundary=n, run=side, flicker=value) for side, run in zip(SIDES, self.runs)
                             for n, value in enumerate(run.record.measures().get("flicker", []), 1)],
                            columns=["boundary", "run", "flicker"])

    def fps_series(self) -> pd.DataFrame:
        """Per-segment FPS, one series per run, for the page's plot."""
        return fps_series({side: run.metrics.segment_fps for side, run in zip(SIDES, self.runs)})

    def files(self) -> list:
        """Both MP4s with their recipes."""
        return [f for run in self.runs for f in history.files(run)]


def _peak_gib(run: StreamedRun) -> float | None:
    if run.video is None:
        return None
    return json.loads(sidecar(run.video).read_text(encoding="utf-8"))["timings"]["peak_gpu_gib"]


def _shown(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.2f}"
