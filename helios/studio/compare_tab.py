"""The Compare tab: settings A and B (timeline, steps, seed, crossfade, and each side's checkpoint, weight form and
engine) over the Generate tab's image or video, length and resolution; A runs, then B, each streaming to its own
player, then both play side by side with what each measured and how far their frames differ."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from helios.errors import HeliosError
from helios.limits import MAX_SEED, Limits
from helios.reference import ENGINES

from . import history_tab
from .compare import MEASURES, SEGMENT_COLUMNS, SIDES, Comparison, SideSettings
from .form import STEP_PRESETS, Form
from .generate_tab import FIRST_PROMPT, Generating, segment_order
from .gpu import on_gpu
from .metrics import REAL_TIME
from .models import FORMS, LOADED, SideModel
from .scripts import script
from .tab import GPU, QUIET, Page, in_words
from .timeline_editor import timeline_rows, widened
from .worded import Checkpoint, Crossfade, EngineChoice, Seed, WeightsChoice

COLOURS = {"A": "#f97316", "B": "#4f46e5"}


@dataclass
class Side:
    """One side's components, in the order of `SideSettings` and then `SideModel`."""

    rows: gr.Dataframe
    crossfade: gr.Slider
    steps: gr.Dropdown
    seed: gr.Number
    checkpoint: gr.Dropdown
    form: gr.Radio
    engine: gr.Radio

    @property
    def settings(self) -> list:
        return [self.rows, self.crossfade, self.steps, self.seed]

    @property
    def model(self) -> list:
        return [self.checkpoint, self.form, self.engine]


@dataclass
class CompareTab:
    a: Side
    b: Side
    plan: gr.Markdown
    run: gr.Button
    stop: gr.Button
    live_a: gr.Video
    live_b: gr.Video
    metrics: gr.HTML
    video_a: gr.Video
    video_b: gr.Video
    difference: gr.Video
    play_both: gr.Button
    measures: gr.Dataframe
    per_segment: gr.Dataframe
    fps_plot: gr.LinePlot
    flicker_plot: gr.LinePlot
    drift_plot: gr.LinePlot
    files: gr.File

    @property
    def models(self) -> list:
        """Each side's checkpoint, weight form and engine, A's then B's: /compare's trailing inputs."""
        return [*self.a.model, *self.b.model]

    @property
    def outputs(self) -> list:
        return [self.live_a, self.live_b, self.metrics, self.fps_plot, self.video_a, self.video_b, self.measures,
                self.per_segment, self.difference, self.files]


def build(page: Page) -> CompareTab:
    with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
        tab = _lay_out(page)
    handlers = Comparing(page, tab)
    shared = page.generate
    inputs = [*tab.a.settings, *tab.b.settings, shared.unit, shared.image, shared.video, shared.segments,
              shared.resolution, *tab.models]
    tab.run.click(on_gpu(handlers.compare, page.limits), inputs, tab.outputs, **GPU, api_name="compare")
    tab.stop.click(Generating(page).stop, None, None, concurrency_limit=None, api_visibility="private")
    tab.play_both.click(None, None, None, js=script("play_together.js"))
    history_tab.refresh_when(tab.files, page)
    tab.measures.change(handlers.plots, None, [tab.flicker_plot, tab.drift_plot], **QUIET)
    for choice in tab.models:
        choice.change(handlers.plan, tab.models, tab.plan, **QUIET)
    for changed in page.adapters_changed:
        changed.then(handlers.columns, [tab.a.rows, tab.b.rows], [tab.a.rows, tab.b.rows], **QUIET)
    page.demo.load(handlers.plan, tab.models, tab.plan, **QUIET)
    return tab


def _lay_out(page: Page) -> CompareTab:
    gr.Markdown(
        "Two settings over the same inputs: the **Generate** tab's image or video, length, resolution and time unit. "
        "A runs, then B, on the same GPU, each on the checkpoint, weight form and engine it names (a model not loaded "
        "is loaded first; the loaded one stays for Generate); when both are done they play side by side, with what "
        "each measured and how far their frames differ."
    )
    with gr.Row():
        a, b = (_side(page, name) for name in SIDES)
    c: dict = dict(a=a, b=b, plan=gr.Markdown("", elem_id="compare-plan"))
    with gr.Row():
        c["run"] = gr.Button("Compare", variant="primary", elem_id="compare")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    with gr.Row():
        for side in SIDES:
            c[f"live_{side.lower()}"] = gr.Video(label=f"{side}, live", streaming=True, autoplay=True,
                                                 interactive=False, elem_id=f"compare-live-{side.lower()}")
    c["metrics"] = gr.HTML("<div class='metrics'>Press Compare to run A, then B.</div>", elem_id="compare-metrics")
    with gr.Row():
        c["video_a"] = gr.Video(label="A", interactive=False, loop=True, elem_id="compare-a")
        c["video_b"] = gr.Video(label="B", interactive=False, loop=True, elem_id="compare-b")
        c["difference"] = gr.Video(label="Difference (brighter = further apart)", interactive=False, loop=True,
                                   elem_id="compare-difference")
    c["play_both"] = gr.Button("Play side by side, in sync", elem_id="play-both")
    c.update(_measured(page.limits))
    c["files"] = gr.File(label="Both MP4s and recipes", file_count="multiple", interactive=False,
                         elem_id="compare-files")
    return CompareTab(**c)


def _side(page: Page, name: str) -> Side:
    flavour, limits = page.engine.model.flavour, page.limits
    default = ",".join(map(str, flavour.default_pyramid_steps or (2, 2, 2)))
    steps = "1,1,1" if name == "A" and flavour.pyramid else default
    key = name.lower()
    checkpoints, own_form = page.sessions.choices.checkpoints, page.sessions.choices.own_form
    with gr.Column():
        rows = timeline_rows(page.sessions.settings.adapters, FIRST_PROMPT, f"Timeline {name}", f"compare-rows-{key}")
        with gr.Row():
            steps = gr.Dropdown(list(STEP_PRESETS), value=steps, allow_custom_value=True, label=f"Steps {name}",
                                visible=flavour.pyramid, info=f"each from 1 to {limits.max_steps}",
                                elem_id=f"compare-steps-{key}")
            seed = Seed(value=0, precision=0, label=f"Seed {name}", info=f"0 to {MAX_SEED}")
            crossfade = Crossfade(0, 6, value=2, step=1, label=f"Crossfade {name} (segments)")
        with gr.Row():
            checkpoint = Checkpoint(checkpoints, value=LOADED, label=f"Checkpoint {name}",
                                    elem_id=f"compare-checkpoint-{key}")
            form = WeightsChoice(list(FORMS), value=own_form, label=f"Weights {name}", elem_id=f"compare-form-{key}")
            engine = EngineChoice(list(ENGINES), value="ours", label=f"Engine {name}",
                                  info="diffusers: its reference pipeline, one prompt", elem_id=f"compare-engine-{key}")
    return Side(rows, crossfade, steps, seed, checkpoint, form, engine)


def _measured(limits: Limits) -> dict:
    c: dict = {}
    with gr.Row():
        c["measures"] = gr.Dataframe(headers=MEASURES, interactive=False, label="Measured", elem_id="compare-table")
    c["per_segment"] = gr.Dataframe(
        headers=SEGMENT_COLUMNS, interactive=False, elem_id="compare-psnr",
        label="Per segment: PSNR and SSIM of A against B (the two MP4s); each run's flicker at the boundary into the "
              "segment (1 = like any other step) and brightness drift from its first segment",
    )
    c["fps_plot"] = gr.LinePlot(
        x="segment", y="FPS", color="run", color_map={**COLOURS, REAL_TIME: "#9ca3af"}, sort=segment_order(limits),
        title="FPS per segment", x_title="segment", y_title="frames per second", height=200, elem_id="compare-plot",
    )
    with gr.Row():
        c["flicker_plot"] = gr.LinePlot(
            x="boundary", y="flicker", color="run", color_map=COLOURS,
            title="Flicker where segments meet (1 = like any other step)", x_title="boundary into segment",
            height=200, elem_id="compare-flicker-plot",
        )
        c["drift_plot"] = gr.LinePlot(
            x="segment", y="brightness drift", color="run", color_map=COLOURS,
            title="Brightness drift from the first segment", height=200, elem_id="compare-drift-plot",
        )
    return c


class Comparing:
    """The tab's handlers; `compare`'s docstring is what the API and MCP clients read."""

    def __init__(self, page: Page, tab: CompareTab):
        self.sessions, self.tab = page.sessions, tab

    def columns(self, rows_a: list[list], rows_b: list[list], request: gr.Request) -> list:
        """Both timelines with a strength column per adapter the session has now."""
        return [widened(rows, self.sessions, request.session_hash, f"Timeline {name}", f"compare-rows-{name.lower()}")
                for name, rows in (("A", rows_a), ("B", rows_b))]

    @in_words
    def compare(self, rows_a: list[list], crossfade_a: float, steps_a: str, seed_a: int, rows_b: list[list],
                crossfade_b: float, steps_b: str, seed_b: int, unit: str, image: str | None, video: str | None,
                segments: int, resolution: str, checkpoint_a: str = LOADED, form_a: str = "", engine_a: str = "ours",
                checkpoint_b: str = LOADED, form_b: str = "", engine_b: str = "ours", request: gr.Request = None):
        """Run settings A, then B, over the same image or video, length and resolution, each on its own checkpoint,
        weight form and engine, and measure both: FPS, first frame, peak memory, load time, per-segment PSNR and
        SSIM of A against B, each run's flicker where segments meet and drift from its first segment, and a heat map
        of where they differ. A side that cannot run on this machine is refused before A starts.

        Args:
            rows_a: A's prompt timeline, rows of [start, prompt, LoRA strengths].
            crossfade_a: A's crossfade, in segments.
            steps_a: A's denoising steps per pyramid stage, like "1,1,1".
            seed_a: A's random seed.
            rows_b: B's prompt timeline, rows of [start, prompt, LoRA strengths].
            crossfade_b: B's crossfade, in segments.
            steps_b: B's denoising steps per pyramid stage, like "2,2,2".
            seed_b: B's random seed.
            unit: "seconds" or "segments", the unit of both timelines' starts.
            image: an image both start from, or none.
            video: a video both continue, or none.
            segments: the length of both, in segments of 33 frames.
            resolution: "HEIGHTxWIDTH", like "384x640".
            checkpoint_a: A's checkpoint: "the loaded model", or one the Compare tab lists (Helios-Distilled, -Mid,
            -Base).
            form_a: A's weights, "bf16" or "FP8" (by default the loaded model's own).
            engine_a: what makes A's frames: "ours", or "diffusers" (its reference pipeline, one prompt).
            checkpoint_b: B's checkpoint, as checkpoint_a.
            form_b: B's weights, as form_a.
            engine_b: what makes B's frames, as engine_a.
        """
        form = Form([], unit, 0, image, video, segments, "", 0, resolution)
        a = SideSettings(rows_a, crossfade_a, steps_a, seed_a, SideModel(checkpoint_a, form_a or "", engine_a))
        b = SideSettings(rows_b, crossfade_b, steps_b, seed_b, SideModel(checkpoint_b, form_b or "", engine_b))
        yield from self._stream(self.sessions.compare(request.session_hash, form, a, b))

    def plan(self, checkpoint_a, form_a, engine_a, checkpoint_b, form_b, engine_b) -> str:
        """What each side will load before it runs, or why it cannot run here."""
        lines = []
        for side, model in (("A", SideModel(checkpoint_a, form_a or "", engine_a)),
                            ("B", SideModel(checkpoint_b, form_b or "", engine_b))):
            try:
                lines.append(f"**{side}**: {html.escape(self.sessions.choices.plan(model))}.")
            except HeliosError as exc:
                lines.append(f"**{side} cannot run here**: {html.escape(str(exc))}")
        return "  \n".join(lines)

    def plots(self, request: gr.Request):
        comparison = self.sessions.last_comparison(request.session_hash)
        if comparison is None:
            return {}
        return {self.tab.flicker_plot: comparison.flicker_series(), self.tab.drift_plot: comparison.drift_series()}

    def _stream(self, comparison: Comparison):
        """The last comparison's results are cleared first; a side's model being made ready is said in the metrics;
        A's clips stream to A's player, then B's to B's. The plot is drawn once both series exist (a plot first
        drawn with A alone kept only A's series in the browser)."""
        tab = self.tab
        players, videos = (tab.live_a, tab.live_b), (tab.video_a, tab.video_b)
        yield {tab.metrics: "<div class='metrics'>Starting A.</div>", tab.fps_plot: None, tab.video_a: None,
               tab.video_b: None, tab.measures: [], tab.per_segment: [], tab.difference: None, tab.files: None}
        for side, update in comparison.updates():
            n = SIDES.index(side)
            if isinstance(update, str):
                yield {tab.metrics: f"<h4>Run {side}</h4><div class='metrics'>{html.escape(update)}</div>"}
                continue
            out = {tab.metrics: f"<h4>Run {side}</h4>{update.metrics.to_html()}"}
            if update.clip:
                out[players[n]] = str(update.clip)
            if update.video:
                out[videos[n]] = str(update.video)
            yield out
        if comparison.difference is None:
            gr.Warning("A was stopped, so B did not run." if len(comparison.runs) < 2
                       else "B was stopped: there is no difference to show.")
        made = [str(r.video) if r.video else None for r in comparison.runs] + [None] * (2 - len(comparison.runs))
        yield {tab.fps_plot: comparison.fps_series(), **dict(zip(videos, made)), tab.measures: comparison.measures(),
               tab.per_segment: comparison.per_segment(),
               tab.difference: str(comparison.difference.heatmap) if comparison.difference else None,
               tab.files: [str(f) for f in comparison.files()]}
