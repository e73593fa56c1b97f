"""A session's finished runs, newest first: what each was asked for and measured, to play again, download with its
recipe, or load back into the form. Gradio-free: the page renders the rows and the picked run's files."""

from __future__ import annotations

from pathlib import Path

from helios.recipe import sidecar

from .form import RESOLUTIONS, rows_from_timeline
from .metrics import shortened
from .streamed_run import StreamedRun

COLUMNS = ["run", "prompt", "steps", "seed", "segments", "resolution", "FPS", "first frame s", "status"]


def summary(number: int, run: StreamedRun) -> list:
    """One row of the history table."""
    request = run.run.request
    s = request.settings
    return [
        number,
        shortened(" / ".join(request.timeline.prompts), 80),
        ",".join(map(str, run.run.plan.pyramid_steps)),
        s.seed,
        request.total_segments,
        f"{s.height}x{s.width}",
        round(run.metrics.overall_fps or 0.0, 2),
        round(run.metrics.first_frame_s, 2) if run.metrics.first_frame_s is not None else None,
        run.metrics.state,
    ]


def files(run: StreamedRun) -> list[Path]:
    """The MP4 and its recipe."""
    return [run.video, sidecar(run.video)] if run.video is not None else []


def form_values(run: StreamedRun, adapters: tuple[str, ...]) -> tuple:
    """What the form needs to ask for this run again: rows (a strength column per adapter of the editor's
    `adapters`), unit, crossfade, segments, steps, seed, resolution."""
    request = run.run.request
    s = request.settings
    rows, unit, crossfade = rows_from_timeline(request.timeline, adapters)
    resolution = next(k for k, v in RESOLUTIONS.items() if v == (s.height, s.width))
    return rows, unit, crossfade, s.num_segments, ",".join(map(str, run.run.plan.pyramid_steps)), s.seed, resolution
