"""The Generate tab: a prompt timeline, an optional image or video, length, size, steps and seed on the left; the
live player, metrics, FPS plot and run buttons on the right, with the timeline editor and this session's runs."""

from __future__ import annotations

import html
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from helios.limits import FRAMES_PER_SEGMENT, MAX_PROMPT_TOKENS, MAX_SEED, Limits
from helios.lora.file import MAX_STRENGTH

from . import history_tab, timeline_editor
from .form import RESOLUTIONS, STEP_PRESETS, Form, task_of
from .gpu import on_gpu
from .live_stream import PLAYER_HTML, LiveStream
from .metrics import REAL_TIME
from .tab import GPU, Page, in_words
from .worded import Crossfade, ImageUpload, Resolution, Seed, Segments, StartUnit, VideoUpload

ASSETS = Path(__file__).resolve().parents[2] / "assets"
FIRST_PROMPT = "A red fox trotting through fresh snow in a sunlit pine forest, cinematic"
TIMELINE = f"Prompt timeline (prompts of at most {MAX_PROMPT_TOKENS} tokens)"
RUNS = ("generate", "continue", "compare")
"""The API names of the events that run on the GPU: a Stop also keeps this session's queued ones from starting."""


@dataclass
class GenerateTab:
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
    mode: gr.Markdown
    metrics: gr.HTML
    fps_plot: gr.LinePlot
    generate: gr.Button
    stop: gr.Button
    apply: gr.Button
    resume: gr.Button
    download: gr.File
    editor: timeline_editor.TimelineEditor
    history: history_tab.HistoryPanel
    lora_files: gr.File
    lora_strength: gr.Slider
    lora_status: gr.Markdown

    @property
    def form(self) -> list:
        """The components behind `Form`, in its field order."""
        return [getattr(self, f.name) for f in fields(Form)]


def segment_order(limits: Limits) -> list[str]:
    """Segments are categories on the plots' axis, in number order (not "1", "10", "2")."""
    return [str(n) for n in range(1, limits.max_segments + 1)]


def build(page: Page) -> GenerateTab:
    c: dict = {}
    with gr.Tab("Generate", id="generate"), gr.Row():
        with gr.Column(scale=5):
            c.update(_inputs(page))
        with gr.Column(scale=6):
            c.update(_outputs(page.limits))
    tab = page.generate = GenerateTab(**c)
    handlers = Generating(page)
    outputs = [tab.metrics, tab.fps_plot, tab.download, tab.seed]
    inputs = [*tab.form, tab.randomize]
    tab.generate.click(on_gpu(handlers.generate, page.limits), inputs, outputs, **GPU, api_name="generate")
    tab.resume.click(on_gpu(handlers.continue_video, page.limits), inputs, outputs, **GPU, api_name="continue")
    tab.stop.click(handlers.stop, None, None, concurrency_limit=None, api_name="stop")
    tab.apply.click(handlers.apply_timeline, [tab.rows, tab.unit, tab.crossfade], None, concurrency_limit=None,
                    api_name="apply_timeline")
    for upload in (tab.image, tab.video):
        upload.change(task_of, [tab.image, tab.video], tab.mode, api_visibility="private")
    loras = [tab.lora_files, tab.lora_strength]
    columns = dict(fn=handlers.editor_columns, inputs=tab.rows, outputs=tab.rows, api_visibility="private")
    page.adapters_changed = (
        tab.lora_files.upload(handlers.set_loras, loras, tab.lora_status, concurrency_limit=None,
                              api_name="loras").success(**columns),
        tab.lora_files.clear(handlers.set_loras, loras, tab.lora_status, concurrency_limit=None,
                             api_visibility="private").success(**columns),
    )
    tab.lora_strength.release(handlers.set_loras, loras, tab.lora_status, concurrency_limit=None,
                              api_visibility="private")
    timeline_editor.wire(tab.editor, tab, page.limits, page.sessions.adapters)
    history_tab.wire(tab.history, page)
    return tab


def _inputs(page: Page) -> dict:
    limits, flavour = page.limits, page.engine.model.flavour
    c: dict = {}
    c["rows"] = timeline_editor.timeline_rows(page.sessions.settings.adapters, FIRST_PROMPT, TIMELINE, "timeline")
    editor = timeline_editor.lay_out_buttons()
    with gr.Row():
        c["unit"] = StartUnit(["seconds", "segments"], value="seconds", label="Start in")
        c["crossfade"] = Crossfade(0, 6, value=2, step=1, label="Crossfade (segments)")
    c["editor"] = timeline_editor.TimelineEditor(**editor, **timeline_editor.lay_out_files())
    with gr.Row():
        c["image"] = ImageUpload(label="Start from an image (optional)", type="filepath", sources=["upload"])
        c["video"] = VideoUpload(
            label=f"Continue a video (optional; at most {limits.max_context_frames} frames)", sources=["upload"]
        )
    c["mode"] = gr.Markdown(task_of(None, None), elem_id="mode")
    c.update(_lora_inputs(page))
    gr.Examples(
        [[str(p)] for p in sorted((ASSETS / "images").glob("*.png"))], inputs=[c["image"]], label="Example images"
    )
    gr.Examples([[str(p)] for p in sorted((ASSETS / "clips").glob("*.mp4"))], inputs=[c["video"]], label="Example clip")
    with gr.Row():
        c["segments"] = Segments(1, limits.max_segments, value=4, step=1,
                                 label=f"Length (segments of {FRAMES_PER_SEGMENT} frames)")
        c["resolution"] = Resolution(list(RESOLUTIONS), value=page.default_resolution,
                                     label="Resolution (height x width)")
    with gr.Row():
        c["steps"] = gr.Dropdown(
            list(STEP_PRESETS), value=",".join(map(str, flavour.default_pyramid_steps or (2, 2, 2))),
            allow_custom_value=True, label="Steps per stage", visible=flavour.pyramid,
            info=f"or your own, each from 1 to {limits.max_steps}",
        )
        c["seed"] = Seed(value=0, precision=0, label="Seed", info=f"0 to {MAX_SEED}")
        c["randomize"] = gr.Checkbox(value=False, label="Randomize seed")
    gr.Markdown(f"Model: `{html.escape(page.engine.model.label)}`", elem_id="model")
    return c


def _lora_inputs(page: Page) -> dict:
    own = page.sessions.settings.loras
    loaded = ", ".join(f"`{f.name}` ({f.strength:g})" for f in own) or "none"
    with gr.Accordion("LoRA adapters", open=False):
        gr.Markdown(f"Loaded with the app (a strength column each in the timeline): {loaded}.")
        c = dict(lora_files=gr.File(label="Add adapters for this session (.safetensors)", file_count="multiple",
                                    file_types=[".safetensors"], type="filepath", elem_id="lora-files"),
                 lora_strength=gr.Slider(-MAX_STRENGTH, MAX_STRENGTH, value=1.0, step=0.05,
                                         label="Strength of the added adapters (every segment)"),
                 lora_status=gr.Markdown("", elem_id="lora-status"))
    return c


def _outputs(limits: Limits) -> dict:
    c: dict = {}
    gr.HTML(PLAYER_HTML, label="Live", elem_id="live")
    c["metrics"] = gr.HTML("<div class='metrics'>Press Generate to start.</div>", elem_id="metrics")
    with gr.Row():
        gr.Radio(
            ["smooth", "live"], value="smooth", label="Playback", elem_id="playback", scale=1, interactive=True,
            info="smooth: below real time, starts once the whole video will play without a pause; live: at once",
        )
        gr.HTML("", elem_id="playback-status")
    gr.HTML("", elem_id="on-screen")
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
    c["history"] = history_tab.lay_out()
    return c


class Generating:
    """The tab's handlers; their docstrings are what the API and MCP clients read."""

    def __init__(self, page: Page):
        self.page = page
        self.sessions = page.sessions

    @in_words
    def generate(self, rows: list[list], unit: str, crossfade: float, image: str | None, video: str | None,
                 segments: int, steps: str, seed: int, resolution: str, randomize: bool, request: gr.Request):
        """Generate a Helios video from a prompt timeline, streamed segment by segment; an image starts it
        (image-to-video), a video is continued (video-to-video), neither is text-to-video.

        Args:
            rows: the prompt timeline, rows of [start, prompt, a strength per LoRA adapter the app loaded (blank: the
                row before's)]: each prompt runs from its start (in `unit`) on.
            unit: "seconds" or "segments", the unit of the rows' starts.
            crossfade: over how many segments one prompt's embedding fades into the next (0 to 4).
            image: an image to start the video from, or none.
            video: a video to continue, or none.
            segments: the video's length in segments of 33 frames.
            steps: denoising steps per pyramid stage, like "2,2,2" (more is slower and finer).
            seed: the random seed; the same seed and settings give the same frames.
            resolution: "HEIGHTxWIDTH", one of the sizes the page offers, like "384x640".
            randomize: draw a new seed instead of `seed`.
        """
        form = Form(rows, unit, crossfade, image, video, segments, steps, seed, resolution)
        used_seed, updates = self.sessions.generate(request.session_hash, form, randomize)
        yield from self._stream(used_seed, updates, self.page.live.open())

    @in_words
    def continue_video(self, rows: list[list], unit: str, crossfade: float, image: str | None, video: str | None,
                       segments: int, steps: str, seed: int, resolution: str, randomize: bool, request: gr.Request):
        """Continue this session's last video for more segments, exactly where it stopped (its history and random
        state), under the timeline given; the result is the whole video so far.

        Args:
            rows: the prompt timeline for the new segments, rows of [start, prompt, LoRA strengths].
            unit: "seconds" or "segments", the unit of the rows' starts.
            crossfade: over how many segments one prompt's embedding fades into the next (0 to 4).
            image: ignored: a continued video keeps its start.
            video: ignored: the session's last video is continued.
            segments: how many segments of 33 frames to add.
            steps: denoising steps per pyramid stage, like "2,2,2".
            seed: ignored: the video's own random state goes on.
            resolution: must be the video's own, "HEIGHTxWIDTH".
            randomize: ignored.
        """
        form = Form(rows, unit, crossfade, image, video, segments, steps, seed, resolution)
        updates = self.sessions.extend(request.session_hash, form)
        yield from self._stream(seed, updates, self.page.live.open())

    @in_words
    def set_loras(self, files: list[str] | None, strength: float, request: gr.Request) -> str:
        """Add LoRA adapters to this session's runs (Generate, Continue, Compare, Live), beside the app's own; none
        removes the session's.

        Args:
            files: LoRA adapter files (.safetensors), each named in timelines by its file's stem.
            strength: their strength in every segment, from -2 to 2.
        """
        loras = self.sessions.set_loras(request.session_hash, files or [], strength)
        if not loras:
            return "No adapters of this session's: the app's own only."
        return "Added for this session: " + ", ".join(f"`{f.name}` at {f.strength:g} (sha256 {f.sha256[:12]})"
                                                       for f in loras) + "."

    def editor_columns(self, rows, request: gr.Request):
        return timeline_editor.widened(rows, self.sessions, request.session_hash, TIMELINE, "timeline")

    def stop(self, request: gr.Request):
        """Stop this session's running generation or comparison after its current denoising step; what was made
        stays downloadable."""
        if self.sessions.stop(request.session_hash, self._waiting_runs(request.session_hash)):
            gr.Info("Stopping after the current denoising step (a queued run will not start); what was made stays "
                    "downloadable.")
        else:
            gr.Warning("Nothing is running: there is nothing to stop.")

    @in_words
    def apply_timeline(self, rows: list[list], unit: str, crossfade: float, request: gr.Request):
        """Change the prompt timeline of this session's running generation from its next segment on.

        Args:
            rows: the new prompt timeline, rows of [start, prompt, LoRA strengths].
            unit: "seconds" or "segments", the unit of the rows' starts.
            crossfade: over how many segments one prompt's embedding fades into the next.
        """
        segment = self.sessions.apply_timeline(request.session_hash, rows, unit, crossfade)
        if segment is None:
            gr.Warning("Nothing is running: the timeline is used by the next Generate.")
        else:
            gr.Info(f"New timeline applies from segment {segment}, the next one to start.")

    def _stream(self, seed: int, updates, live: LiveStream):
        """Each clip goes out on the run's live stream the moment it is encoded; the page's updates name the stream."""
        tab = self.page.generate
        try:
            for update in updates:
                if update.clip:
                    live.add(update.clip)
                out = {tab.metrics: update.metrics.to_html(live.url), tab.seed: seed}
                if update.clip:
                    out[tab.fps_plot] = update.metrics.fps_table()
                if update.video or update.final:
                    out[tab.download] = str(update.video) if update.video else None
                yield out
        finally:
            live.end()

    def _waiting_runs(self, session: str) -> int:
        """How many of this session's runs wait in Gradio's queue, from the page or the API."""
        queues = self.page.demo._queue.event_queue_per_concurrency_id.values()
        return sum(e.session_hash == session and e.fn.api_name in RUNS for q in queues for e in list(q.queue))
