"""The page's components, laid out: timeline editor, uploads and settings on the left; stream and metrics on the right.
No behaviour here: `page.py` wires these to the handlers."""

from __future__ import annotations

import html
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from helios.flavour import Flavour
from helios.limits import FRAMES_PER_SEGMENT, MAX_PROMPT_TOKENS, MAX_SEED, Limits
from helios.reference import ENGINES

from .compare import MEASURES, SEGMENT_COLUMNS
from .form import RESOLUTIONS, STEP_PRESETS, Form, task_of
from .history import COLUMNS
from .live_stream import PLAYER_HTML
from .metrics import REAL_TIME
from .models import FORMS, LOADED
from .worded import (
    Checkpoint,
    Crossfade,
    EngineChoice,
    ImageUpload,
    Resolution,
    RunNumber,
    Seed,
    Segments,
    StartUnit,
    TimelineRows,
    VideoUpload,
    WeightsChoice,
)

ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLE_TIMELINES = {p.name: p for p in sorted((ASSETS / "timelines").glob("*")) if p.suffix in (".json", ".csv")}
CSS = """
.metrics-table th { text-align: left; padding-right: 1em; font-weight: 600; }
.banner { padding: .6em 1em; border-radius: 8px; background: #fef3c7; color: #78350f; }
.live-player video { width: 100%; max-height: 480px; background: #000; border-radius: 8px; }
"""


@dataclass
class Layout:
    rows: gr.Dataframe
    unit: gr.Radio
    crossfade: gr.Slider
    image: gr.Image
    video: gr.Video
    segments: gr.Slider
    steps: gr.Dropdown
    seed: gr.Number
    resolution: gr.Dropdown
    randomize: gr.Checkbox
    banner: gr.HTML
    mode: gr.Markdown
    add_row: gr.Button
    remove_row: gr.Button
    sort_rows: gr.Button
    import_file: gr.File
    example_pick: gr.Dropdown
    export_json: gr.Button
    export_csv: gr.Button
    exported: gr.File
    live: gr.HTML
    metrics: gr.HTML
    playback: gr.Radio
    on_screen: gr.HTML
    fps_plot: gr.LinePlot
    generate: gr.Button
    stop: gr.Button
    apply: gr.Button
    resume: gr.Button
    download: gr.File
    history: gr.Dataframe
    run_pick: gr.Number
    play_run: gr.Button
    load_run: gr.Button
    run_video: gr.Video
    run_files: gr.File
    compare: "CompareLayout"

    @property
    def form(self) -> list:
        """The components behind `Form`, in its field order."""
        return [getattr(self, f.name) for f in fields(Form)]


def segment_order(limits: Limits) -> list[str]:
    """Segments are categories on the plots' axis, in number order (not "1", "10", "2")."""
    return [str(n) for n in range(1, limits.max_segments + 1)]


def lay_out(banner: str, model_label: str, flavour: Flavour, default_resolution: str, limits: Limits = Limits(),
            checkpoints: tuple[list[str], str] = ([LOADED], "bf16")) -> Layout:
    """Call inside a `gr.Blocks` context; `banner` is HTML. Each input shows the limit that applies to it.
    `checkpoints`: what a comparison side may choose, and the loaded model's own weight form."""
    c: dict = {}
    gr.Markdown("# Helios Studio\nReal-time, minute-long video with Helios, streamed while it is generated.")
    c["banner"] = gr.HTML(banner)
    with gr.Tab("Generate"), gr.Row():
        with gr.Column(scale=5):
            c["rows"] = TimelineRows(
                value=[[0, "A red fox trotting through fresh snow in a sunlit pine forest, cinematic"]],
                headers=["start", "prompt"], datatype=["number", "str"], type="array", interactive=True,
                column_count=2, label=f"Prompt timeline (prompts of at most {MAX_PROMPT_TOKENS} tokens)", elem_id="timeline", wrap=True, column_widths=["16%", "84%"],
            )
            with gr.Row():
                c["add_row"] = gr.Button("Add row", size="sm", elem_id="add-row")
                c["remove_row"] = gr.Button("Remove last row", size="sm")
                c["sort_rows"] = gr.Button("Sort by start", size="sm")
            with gr.Row():
                c["unit"] = StartUnit(["seconds", "segments"], value="seconds", label="Start in")
                c["crossfade"] = Crossfade(0, 6, value=2, step=1, label="Crossfade (segments)")
            with gr.Accordion("Import / export timeline", open=False):
                c["import_file"] = gr.File(label="Import .json or .csv", file_types=[".json", ".csv"], type="filepath")
                c["example_pick"] = gr.Dropdown(list(EXAMPLE_TIMELINES), label="Example timelines", value=None)
                with gr.Row():
                    c["export_json"] = gr.Button("Export JSON", size="sm")
                    c["export_csv"] = gr.Button("Export CSV", size="sm")
                c["exported"] = gr.File(label="Exported timeline", interactive=False)
            with gr.Row():
                c["image"] = ImageUpload(label="Start from an image (optional)", type="filepath", sources=["upload"])
                c["video"] = VideoUpload(
                    label=f"Continue a video (optional; at most {limits.max_context_frames} frames)", sources=["upload"]
                )
            c["mode"] = gr.Markdown(task_of(None, None), elem_id="mode")
            gr.Examples([[str(p)] for p in sorted((ASSETS / "images").glob("*.png"))], inputs=[c["image"]], label="Example images")
            gr.Examples([[str(p)] for p in sorted((ASSETS / "clips").glob("*.mp4"))], inputs=[c["video"]], label="Example clip")
            with gr.Row():
                c["segments"] = Segments(1, limits.max_segments, value=4, step=1, label=f"Length (segments of {FRAMES_PER_SEGMENT} frames)")
                c["resolution"] = Resolution(list(RESOLUTIONS), value=default_resolution, label="Resolution (height x width)")
            with gr.Row():
                c["steps"] = gr.Dropdown(
                    list(STEP_PRESETS), value=",".join(map(str, flavour.default_pyramid_steps or (2, 2, 2))),
                    allow_custom_value=True, label="Steps per stage", visible=flavour.pyramid,
                    info=f"or your own, each from 1 to {limits.max_steps}",
                )
                c["seed"] = Seed(value=0, precision=0, label="Seed", info=f"0 to {MAX_SEED}")
                c["randomize"] = gr.Checkbox(value=False, label="Randomize seed")
            gr.Markdown(f"Model: `{html.escape(model_label)}`", elem_id="model")
        with gr.Column(scale=6):
            c["live"] = gr.HTML(PLAYER_HTML, label="Live", elem_id="live")
            c["metrics"] = gr.HTML("<div class='metrics'>Press Generate to start.</div>", elem_id="metrics")
            with gr.Row():
                c["playback"] = gr.Radio(
                    ["smooth", "live"], value="smooth", label="Playback", elem_id="playback", scale=1, interactive=True,
                    info="smooth: below real time, starts once the whole video will play without a pause; live: at once",
                )
                gr.HTML("", elem_id="playback-status")
            c["on_screen"] = gr.HTML("", elem_id="on-screen")
            c["fps_plot"] = gr.LinePlot(
                x="segment", y="FPS", color="run", color_map={"this run": "#4f46e5", REAL_TIME: "#9ca3af"},
                sort=segment_order(limits), title="FPS per segment", x_title="segment", y_title="frames per second",
                height=200, elem_id="fps-plot",
            )
            with gr.Row():
                c["generate"] = gr.Button("Generate", variant="primary", elem_id="generate")
                c["stop"] = gr.Button("Stop", variant="stop", elem_id="stop")
                c["apply"] = gr.Button("Apply timeline now", elem_id="apply")
                c["resume"] = gr.Button("Continue", elem_id="continue")
            c["download"] = gr.File(label="Download MP4", interactive=False, elem_id="download")
            with gr.Accordion("This session's runs", open=False):
                c["history"] = gr.Dataframe(headers=COLUMNS, interactive=False, elem_id="history", wrap=True)
                with gr.Row():
                    c["run_pick"] = RunNumber(value=1, precision=0, minimum=1, label="Run", elem_id="run-pick")
                    c["play_run"] = gr.Button("Play and download", size="sm", elem_id="play-run")
                    c["load_run"] = gr.Button("Load its settings", size="sm", elem_id="load-run")
                c["run_video"] = gr.Video(label="Run", interactive=False, elem_id="run-video")
                c["run_files"] = gr.File(label="Its MP4 and recipe", file_count="multiple", interactive=False, elem_id="run-files")
    with gr.Tab("Compare", elem_id="compare-tab"):
        c["compare"] = lay_out_compare(flavour, limits, *checkpoints)
    return Layout(**c)


@dataclass
class CompareLayout:
    rows_a: gr.Dataframe
    crossfade_a: gr.Slider
    steps_a: gr.Dropdown
    seed_a: gr.Number
    rows_b: gr.Dataframe
    crossfade_b: gr.Slider
    steps_b: gr.Dropdown
    seed_b: gr.Number
    run: gr.Button
    stop: gr.Button
    live_a: gr.Video
    live_b: gr.Video
    metrics: gr.HTML
    video_a: gr.Video
    video_b: gr.Video
    play_both: gr.Button
    measures: gr.Dataframe
    per_segment: gr.Dataframe
    difference: gr.Video
    fps_plot: gr.LinePlot
    files: gr.File
    checkpoint_a: gr.Dropdown
    form_a: gr.Radio
    engine_a: gr.Radio
    checkpoint_b: gr.Dropdown
    form_b: gr.Radio
    engine_b: gr.Radio
    plan: gr.Markdown
    flicker_plot: gr.LinePlot
    drift_plot: gr.LinePlot

    @property
    def sides(self) -> list:
        """The components behind each side's `SideSettings`, A's then B's, but for the models (`models`)."""
        return [self.rows_a, self.crossfade_a, self.steps_a, self.seed_a, self.rows_b, self.crossfade_b, self.steps_b, self.seed_b]

    @property
    def models(self) -> list:
        """Each side's checkpoint, weight form and engine, A's then B's: /compare's trailing inputs."""
        return [self.checkpoint_a, self.form_a, self.engine_a, self.checkpoint_b, self.form_b, self.engine_b]


def lay_out_compare(flavour: Flavour, limits: Limits, checkpoints: list[str], own_form: str) -> CompareLayout:
    c: dict = {}
    gr.Markdown(
        "Two settings over the same inputs: the **Generate** tab's image or video, length, resolution and time unit. "
        "A runs, then B, on the same GPU, each on the checkpoint, weight form and engine it names (a model not loaded "
        "is loaded first; the loaded one stays for Generate); when both are done they play side by side, with what "
        "each measured and how far their frames differ."
    )
    default = ",".join(map(str, flavour.default_pyramid_steps or (2, 2, 2)))
    with gr.Row():
        for side, steps in (("a", "1,1,1" if flavour.pyramid else default), ("b", default)):
            with gr.Column():
                c[f"rows_{side}"] = TimelineRows(
                    value=[[0, "A red fox trotting through fresh snow in a sunlit pine forest, cinematic"]],
                    headers=["start", "prompt"], datatype=["number", "str"], type="array", interactive=True, column_count=2,
                    label=f"Timeline {side.upper()}", elem_id=f"compare-rows-{side}", wrap=True, column_widths=["16%", "84%"],
                )
                with gr.Row():
                    c[f"steps_{side}"] = gr.Dropdown(
                        list(STEP_PRESETS), value=steps, allow_custom_value=True, label=f"Steps {side.upper()}",
                        visible=flavour.pyramid, info=f"each from 1 to {limits.max_steps}", elem_id=f"compare-steps-{side}",
                    )
                    c[f"seed_{side}"] = Seed(value=0, precision=0, label=f"Seed {side.upper()}", info=f"0 to {MAX_SEED}")
                    c[f"crossfade_{side}"] = Crossfade(0, 6, value=2, step=1, label=f"Crossfade {side.upper()} (segments)")
                with gr.Row():
                    c[f"checkpoint_{side}"] = Checkpoint(checkpoints, value=LOADED, label=f"Checkpoint {side.upper()}",
                                                          elem_id=f"compare-checkpoint-{side}")
                    c[f"form_{side}"] = WeightsChoice(list(FORMS), value=own_form, label=f"Weights {side.upper()}",
                                                 elem_id=f"compare-form-{side}")
                    c[f"engine_{side}"] = EngineChoice(list(ENGINES), value="ours", label=f"Engine {side.upper()}",
                                                   info="diffusers: its reference pipeline, one prompt",
                                                   elem_id=f"compare-engine-{side}")
    c["plan"] = gr.Markdown("", elem_id="compare-plan")
    with gr.Row():
        c["run"] = gr.Button("Compare", variant="primary", elem_id="compare")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    with gr.Row():
        c["live_a"] = gr.Video(label="A, live", streaming=True, autoplay=True, interactive=False, elem_id="compare-live-a")
        c["live_b"] = gr.Video(label="B, live", streaming=True, autoplay=True, interactive=False, elem_id="compare-live-b")
    c["metrics"] = gr.HTML("<div class='metrics'>Press Compare to run A, then B.</div>", elem_id="compare-metrics")
    with gr.Row():
        c["video_a"] = gr.Video(label="A", interactive=False, loop=True, elem_id="compare-a")
        c["video_b"] = gr.Video(label="B", interactive=False, loop=True, elem_id="compare-b")
        c["difference"] = gr.Video(
            label="Difference (brighter = further apart)", interactive=False, loop=True, elem_id="compare-difference"
        )
    c["play_both"] = gr.Button("Play side by side, in sync", elem_id="play-both")
    with gr.Row():
        c["measures"] = gr.Dataframe(headers=MEASURES, interactive=False, label="Measured", elem_id="compare-table")
    c["per_segment"] = gr.Dataframe(
        headers=SEGMENT_COLUMNS, interactive=False, elem_id="compare-psnr",
        label="Per segment: PSNR and SSIM of A against B (the two MP4s); each run's flicker at the boundary into the "
              "segment (1 = like any other step) and brightness drift from its first segment",
    )
    c["fps_plot"] = gr.LinePlot(
        x="segment", y="FPS", color="run", color_map={"A": "#f97316", "B": "#4f46e5", REAL_TIME: "#9ca3af"},
        sort=segment_order(limits), title="FPS per segment", x_title="segment", y_title="frames per second",
        height=200, elem_id="compare-plot",
    )
    with gr.Row():
        c["flicker_plot"] = gr.LinePlot(
            x="boundary", y="flicker", color="run", color_map={"A": "#f97316", "B": "#4f46e5"},
            title="Flicker where segments meet (1 = like any other step)", x_title="boundary into segment",
            height=200, elem_id="compare-flicker-plot",
        )
        c["drift_plot"] = gr.LinePlot(
            x="segment", y="brightness drift", color="run", color_map={"A": "#f97316", "B": "#4f46e5"},
            title="Brightness drift from the first segment", height=200, elem_id="compare-drift-plot",
        )
    c["files"] = gr.File(label="Both MP4s and recipes", file_count="multiple", interactive=False, elem_id="compare-files")
    return CompareLayout(**c)
