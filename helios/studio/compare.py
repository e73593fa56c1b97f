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
from helios.reference import run_with
from helios.request import GenerationRequest
from helios.run import Run

from . import history
from .form import Form
from .metrics import RunState, fps_series
from .models import ModelChoices, SideEngine, SideModel
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
    model: SideModel = SideModel()

    def applied_to(self, form: Form) -> Form:
        return replace(form, rows=self.rows, crossfade=self.crossfade, steps=self.steps, seed=self.seed)


class Comparison:
    """`updates` runs A, then B if A finished, each on its side's model (loaded first where it is not warm), yielding
    (side, update): a sentence while a side's model is made ready, then its run's updates; once both are done
    `difference` is set and the tables describe them."""

    def __init__(self, sides: list[tuple[SideModel, GenerationRequest]], choices: ModelChoices,
                 begin: Callable[[Run], tuple[StreamedRun, Iterator[RunUpdate]]]):
        """`sides`: each side's model and its checked request; `begin`: the session's way to start a run (its
        history, its idle time)."""
        self._pending = sides
        self._choices = choices
        self._begin = begin
        self.runs: list[StreamedRun] = []
        self.engines: list[SideEngine] = []
        self.difference: VideoDifference | None = None

    def updates(self) -> Iterator[tuple[str, RunUpdate | str]]:
        for side, (model, request) in zip(SIDES, self._pending):
            yield side, f"Making {side} ready: {self._choices.plan(model)}."
            used = self._choices.engine_for(model, request.settings.height, request.settings.width)
            self.engines.append(used)
            studio, updates = self._begin(run_with(used.engine, request, used.which))
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
        rows = [[name, *(values + ["-", "-"])[:2], "-"] for name, values in (
            ("checkpoint", [e.engine.model.label for e in self.engines]),
            ("weights (memory tier)", [e.engine.model.fit.tier.name for e in self.engines]),
            ("engine", [e.which for e in self.engines]),
            ("load and warm-up first (s)", ["warm" if e.load_s is None else f"{e.load_s:.1f}" for e in self.engines]),
        )]
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
        """Flicker at each boundary (named by the segment it leads into), one series per run, for the page's plot."""
        return pd.DataFrame([dict(boundary=n, run=side, flicker=value) for side, run in zip(SIDES, self.runs)
                             for n, value in enumerate(run.record.measures().get("flicker", []), 2)],
                            columns=["boundary", "run", "flicker"])

    def drift_series(self) -> pd.DataFrame:
        """Each segment's brightness drift from the run's first, one series per run, for the page's plot."""
        return pd.DataFrame([{"segment": n, "run": side, "brightness drift": drift["brightness"]}
                             for side, run in zip(SIDES, self.runs)
                             for n, drift in enumerate(run.record.measures().get("drift", []), 1)],
                            columns=["segment", "run", "brightness drift"])

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
