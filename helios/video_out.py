"""One run into a video file with its recipe beside it, and a progress line per segment: what `generate` and `suite`
share. Nothing is left behind if a run fails."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .media import VideoWriter
from .recipe import Recipe, sidecar
from .record import RunRecord
from .reference import check_reference_request, run_with
from .segment import Segment, StepProgress


class ProgressLine:
    """One line per segment on stderr: a bar of denoising steps, then the segment's measured FPS."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.open = False

    def step(self, p: StepProgress) -> None:
        done = self.width * p.step // max(p.steps, 1)
        bar = "#" * done + "." * (self.width - done)
        self.stream.write(f"\rsegment {p.segment + 1}/{p.total_segments} [{bar}] step {p.step}/{p.steps}")
        self.stream.flush()
        self.open = True

    def close(self) -> None:
        """A run that ends mid-segment ends its line, so what is said next starts a line of its own."""
        if self.open:
            self.stream.write("\n")
            self.open = False

    def segment(self, seg, elapsed: float, frames: int) -> None:
        self.stream.write(
            f"\rsegment {seg.index + 1}/{seg.total_segments} [{'#' * self.width}] {len(seg.frames)} frames, "
            f"{seg.fps:.1f} FPS (overall {frames / elapsed:.1f} FPS)\n"
        )
        self.stream.flush()
        self.open = False


def make_video(run, out: Path, progress: "ProgressLine | None") -> Recipe:
    """One run into `out` and its recipe beside it; nothing is left behind if it fails."""
    writer = VideoWriter(out)
    record = RunRecord(run)
    try:
        for event in run:
            if isinstance(event, StepProgress) and progress:
                progress.step(event)
            elif isinstance(event, Segment):
                record.on_segment(event)
                writer.add(event.frames)
                if progress:
                    progress.segment(event, time.perf_counter() - record.started, writer.count)
                record.measure(event)
        recipe = record.recipe()
        writer.close(comment=recipe.to_json())
    except BaseException:
        run.cancel()
        writer.abort()
        if progress:
            progress.close()
        raise
    sidecar(out).write_text(recipe.to_json(), encoding="utf-8")
    return recipe


def check_request(engine, request, which: str) -> None:
    """Every request is checked before the first runs; `which` engine makes the frames: "ours" or "diffusers"."""
    engine.plan(request)
    if which == "diffusers":
        check_reference_request(request)


def make_one(engine, request, out: Path, progress: ProgressLine | None, which: str) -> Recipe:
    return make_video(run_with(engine, request, which), out, progress)


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(
            {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in row.items()} for row in rows
        )
