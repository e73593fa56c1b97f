"""The Compare tab's side of the page: its buttons wired to the handlers `page.build_demo` defines, and a comparison's
updates turned into the tab's outputs."""

from __future__ import annotations

import html

import gradio as gr

from .compare import SIDES, Comparison
from .layout import Layout
from .scripts import script


def compare_stream(comparison: Comparison):
    """Outputs: A's and B's live players, metrics, plot, A's and B's videos, measures, per-segment table, difference,
    files. The last comparison's results are cleared first; a side's model being made ready is said in the metrics; A's clips stream to A's player, then B's to B's. The plot is drawn
    once both series exist (a plot first drawn with A alone kept only A's series in the browser)."""
    yield gr.skip(), gr.skip(), "<div class='metrics'>Starting A.</div>", None, None, None, [], [], None, None
    for side, update in comparison.updates():
        out = [gr.skip()] * 10
        n = SIDES.index(side)
        if isinstance(update, str):
            out[2] = f"<h4>Run {side}</h4><div class='metrics'>{html.escape(update)}</div>"
            yield tuple(out)
            continue
        out[2] = f"<h4>Run {side}</h4>{update.metrics.to_html()}"
        if update.clip:
            out[n] = str(update.clip)
        if update.video:
            out[4 + n] = str(update.video)
        yield tuple(out)
    if comparison.difference is None:
        gr.Warning("A was stopped, so B did not run." if len(comparison.runs) < 2 else "B was stopped: there is no difference to show.")
    videos = [str(r.video) if r.video else None for r in comparison.runs] + [None] * (2 - len(comparison.runs))
    difference = str(comparison.difference.heatmap) if comparison.difference else None
    yield (gr.skip(), gr.skip(), gr.skip(), comparison.fps_series(), *videos, comparison.measures(), comparison.per_segment(),
           difference, [str(f) for f in comparison.files()])


def wire_compare(page: Layout, compare, stop, runs, plan, plots) -> None:
    c = page.compare
    inputs = [*c.sides, page.unit, page.image, page.video, page.segments, page.resolution, *c.models]
    outputs = [c.live_a, c.live_b, c.metrics, c.fps_plot, c.video_a, c.video_b, c.measures, c.per_segment, c.difference, c.files]
    c.run.click(compare, inputs, outputs, concurrency_id="gpu", concurrency_limit=1, api_name="compare")
    c.stop.click(stop, None, None, concurrency_limit=None, api_visibility="private")
    c.play_both.click(None, None, None, js=script("play_together.js"))
    c.files.change(runs, None, page.history, concurrency_limit=None, api_visibility="private", show_progress="hidden")
    c.measures.change(plots, None, [c.flicker_plot, c.drift_plot], concurrency_limit=None, api_visibility="private",
                      show_progress="hidden")
    for choice in c.models:
        choice.change(plan, c.models, c.plan, concurrency_limit=None, api_visibility="private", show_progress="hidden")
