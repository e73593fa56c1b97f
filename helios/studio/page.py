"""The Gradio page: the layout wired to the session handlers. Errors become words here, and only here."""

from __future__ import annotations

import functools
import html
import inspect
import tempfile
import threading
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from helios.engine import Engine
from helios.errors import HeliosError
from helios.timeline import read_timeline

from . import history
from .compare import SideSettings
from .compare_tab import compare_stream, wire_compare
from .form import Form, rows_from_timeline, task_of, timeline_from_rows
from .gpu import on_gpu
from .layout import Layout, lay_out
from .live_stream import LiveStream, LiveStreams
from .models import LOADED, ModelChoices, SideModel
from .sessions import Sessions
from .settings import StudioSettings
from .timeline_editor import wire_timeline_editor


def _user_error(exc: Exception) -> gr.Error:
    """Gradio renders toasts as HTML and our messages may quote user text: escaped, so they are only ever text."""
    if isinstance(exc, HeliosError):
        return gr.Error(html.escape(str(exc), quote=False), print_exception=False)
    return gr.Error(f"Generation failed unexpectedly ({type(exc).__name__}): {html.escape(str(exc), quote=False)}")


def in_words(handler):
    """A page handler whose every failure reaches the user as one escaped line, never a traceback: our errors in
    their own words, anything else named as unexpected."""
    def worded(exc: Exception) -> gr.Error:
        return exc if isinstance(exc, gr.Error) else _user_error(exc)

    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def streamed(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except Exception as exc:
                raise worded(exc) from None
        return streamed

    @functools.wraps(handler)
    def answered(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except Exception as exc:
            raise worded(exc) from None
    return answered


def _stream(seed: int, updates, live: LiveStream):
    """Each clip goes out on the run's live stream the moment it is encoded; the page's updates name the stream."""
    try:
        for update in updates:
            if update.clip:
                live.add(update.clip)
            yield (
                update.metrics.to_html(live.url),
                update.metrics.fps_table() if update.clip else gr.skip(),
                str(update.video) if update.video else (None if update.final else gr.skip()),
                seed,
            )
    finally:
        live.end()


WARMING_UP = "Warming up with one short run (on a GPU: compiling, capturing CUDA graphs); requests wait until it is done."


def build_demo(
    engine: Engine, banner: str, default_resolution: str, ready: threading.Event | None = None,
    settings: StudioSettings = StudioSettings(), live: LiveStreams | None = None, choices: ModelChoices | None = None,
) -> gr.Blocks:
    """`ready`, if given, is set once the engine has warmed up: until then the banner says so and requests wait.
    `live` holds the runs' live streams; whoever serves the page mounts its route (`LiveStreams.mount`). `choices`:
    the models a comparison may run on (by default the engine's own and the catalog's)."""
    ready = ready or _set_event()
    sessions = Sessions(engine, ready, settings, root=Path(get_upload_folder()) / "helios-runs", choices=choices)
    live = live or LiveStreams(settings.live_streams_kept)

    @in_words
    def generate(rows: list[list], unit: str, crossfade: float, image: str | None, video: str | None, segments: int,
                 steps: str, seed: int, resolution: str, randomize: bool, request: gr.Request):
        """Generate a Helios video from a prompt timeline, streamed segment by segment; an image starts it
        (image-to-video), a video is continued (video-to-video), neither is text-to-video.

        Args:
            rows: the prompt timeline, rows of [start, prompt]: each prompt runs from its start (in `unit`) on.
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
        used_seed, updates = sessions.generate(request.session_hash, form, randomize)
        yield from _stream(used_seed, updates, live.open())

    @in_words
    def continue_video(rows: list[list], unit: str, crossfade: float, image: str | None, video: str | None,
                       segments: int, steps: str, seed: int, resolution: str, randomize: bool, request: gr.Request):
        """Continue this session's last video for more segments, exactly where it stopped (its history and random
        state), under the timeline given; the result is the whole video so far.

        Args:
            rows: the prompt timeline for the new segments, rows of [start, prompt].
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
        updates = sessions.extend(request.session_hash, form)
        yield from _stream(seed, updates, live.open())

    @in_words
    def compare(rows_a: list[list], crossfade_a: float, steps_a: str, seed_a: int, rows_b: list[list],
                crossfade_b: float, steps_b: str, seed_b: int, unit: str, image: str | None, video: str | None,
                segments: int, resolution: str, checkpoint_a: str = LOADED, form_a: str = "", engine_a: str = "ours",
                checkpoint_b: str = LOADED, form_b: str = "", engine_b: str = "ours", request: gr.Request = None):
        """Run settings A, then B, over the same image or video, length and resolution, each on its own checkpoint,
        weight form and engine, and measure both: FPS, first frame, peak memory, load time, per-segment PSNR and
        SSIM of A against B, each run's flicker where segments meet and drift from its first segment, and a heat map
        of where they differ. A side that cannot run on this machine is refused before A starts.

        Args:
            rows_a: A's prompt timeline, rows of [start, prompt].
            crossfade_a: A's crossfade, in segments.
            steps_a: A's denoising steps per pyramid stage, like "1,1,1".
            seed_a: A's random seed.
            rows_b: B's prompt timeline, rows of [start, prompt].
            crossfade_b: B's crossfade, in segments.
            steps_b: B's denoising steps per pyramid stage, like "2,2,2".
            seed_b: B's random seed.
            unit: "seconds" or "segments", the unit of both timelines' starts.
            image: an image both start from, or none.
            video: a video both continue, or none.
            segments: the length of both, in segments of 33 frames.
            resolution: "HEIGHTxWIDTH", like "384x640".
            checkpoint_a: A's checkpoint: "the loaded model", or one the Compare tab lists (Helios-Distilled, -Mid, -Base).
            form_a: A's weights, "bf16" or "FP8" (by default the loaded model's own).
            engine_a: what makes A's frames: "ours", or "diffusers" (its reference pipeline, one prompt).
            checkpoint_b: B's checkpoint, as checkpoint_a.
            form_b: B's weights, as form_a.
            engine_b: what makes B's frames, as engine_a.
        """
        form = Form([], unit, 0, image, video, segments, "", 0, resolution)
        a = SideSettings(rows_a, crossfade_a, steps_a, seed_a, SideModel(checkpoint_a, form_a or "", engine_a))
        b = SideSettings(rows_b, crossfade_b, steps_b, seed_b, SideModel(checkpoint_b, form_b or "", engine_b))
        yield from compare_stream(sessions.compare(request.session_hash, form, a, b))

    def plan(checkpoint_a, form_a, engine_a, checkpoint_b, form_b, engine_b):
        """What each side will load before it runs, or why it cannot run here."""
        lines = []
        for side, model in (("A", SideModel(checkpoint_a, form_a or "", engine_a)), ("B", SideModel(checkpoint_b, form_b or "", engine_b))):
            try:
                lines.append(f"**{side}**: {html.escape(sessions.choices.plan(model))}.")
            except HeliosError as exc:
                lines.append(f"**{side} cannot run here**: {html.escape(str(exc))}")
        return "  \n".join(lines)

    def plots(request: gr.Request):
        comparison = sessions.last_comparison(request.session_hash)
        if comparison is None:
            return gr.skip(), gr.skip()
        return comparison.flicker_series(), comparison.drift_series()

    def stop(request: gr.Request):
        """Stop this session's running generation or comparison after its current denoising step; what was made
        stays downloadable."""
        if sessions.stop(request.session_hash, _waiting_runs(demo, request.session_hash)):
            gr.Info("Stopping after the current denoising step (a queued run will not start); what was made stays downloadable.")
        else:
            gr.Warning("Nothing is running: there is nothing to stop.")

    def runs(request: gr.Request):
        """This session's runs, newest first: prompt, steps, seed, length, resolution, FPS, first frame, status."""
        return [history.summary(n, run) for n, run in enumerate(sessions.history(request.session_hash), 1)]

    def picked(number, session: str):
        runs = sessions.history(session)
        if not isinstance(number, (int, float)) or number != int(number) or not 1 <= number <= len(runs):
            raise HeliosError(f"There is no run {number} in this session: it has {len(runs)}, numbered in the table.")
        return runs[int(number) - 1]

    @in_words
    def play_run(number: int, request: gr.Request):
        """One of this session's runs: its video and its files (the MP4 and its recipe).

        Args:
            number: the run's number in this session's table of runs (1 is the newest).
        """
        run = picked(number, request.session_hash)
        if run.video is None:
            raise HeliosError("That run has no video yet: it is still generating, or stopped before its first segment.")
        return str(run.video), [str(f) for f in history.files(run)]

    @in_words
    def load_run(number: int, request: gr.Request):
        """The settings one of this session's runs was made with, to run again or change.

        Args:
            number: the run's number in this session's table of runs (1 is the newest).
        """
        return history.form_values(picked(number, request.session_hash))

    @in_words
    def apply(rows: list[list], unit: str, crossfade: float, request: gr.Request):
        """Change the prompt timeline of this session's running generation from its next segment on.

        Args:
            rows: the new prompt timeline, rows of [start, prompt].
            unit: "seconds" or "segments", the unit of the rows' starts.
            crossfade: over how many segments one prompt's embedding fades into the next.
        """
        segment = sessions.apply_timeline(request.session_hash, rows, unit, crossfade)
        if segment is None:
            gr.Warning("Nothing is running: the timeline is used by the next Generate.")
        else:
            gr.Info(f"New timeline applies from segment {segment}, the next one to start.")

    def forget(request: gr.Request):
        sessions.forget(request.session_hash)

    @in_words
    def load_timeline(path, segments):
        """The timeline's rows, and a length that covers it (never shorter than the one set)."""
        if not path:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        timeline = read_timeline(path)
        covering = min(timeline.covering_segments, engine.options.limits.max_segments)
        return *rows_from_timeline(timeline), max(covering, segments if isinstance(segments, (int, float)) else 1)

    @in_words
    def export(rows, unit, crossfade, kind):
        timeline = timeline_from_rows(rows, unit, crossfade)
        timeline.check()
        out = Path(tempfile.mkdtemp(prefix="helios-timeline-")) / f"timeline.{kind}"
        out.write_text(timeline.to_json() if kind == "json" else timeline.to_csv(), encoding="utf-8")
        return str(out)

    with gr.Blocks(title="Helios Studio", delete_cache=settings.cache_sweep) as demo:
        page = lay_out(
            _banner_state(banner, ready)[0], engine.model.label, engine.model.flavour, default_resolution, engine.options.limits,
            (sessions.choices.checkpoints, sessions.choices.own_form),
        )
        limits = engine.options.limits
        _wire_run_buttons(page, on_gpu(generate, limits), on_gpu(continue_video, limits), stop, apply)
        _wire_history(page, runs, play_run, load_run)
        wire_compare(page, on_gpu(compare, limits), stop, runs, plan, plots)
        demo.load(plan, page.compare.models, page.compare.plan, api_visibility="private", show_progress="hidden")
        wire_timeline_editor(page, load_timeline, export)
        demo.unload(forget)
        if not ready.is_set():
            timer = gr.Timer(1.0)
            timer.tick(lambda: _banner_state(banner, ready), None, [page.banner, timer], api_visibility="private")
    return demo


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _banner_state(banner: str, ready: threading.Event):
    text = banner if ready.is_set() else f"{WARMING_UP} {banner}"
    return f'<div class="banner" id="banner">{html.escape(text)}</div>', gr.Timer(active=not ready.is_set())


RUNS = ("generate", "continue", "compare")


def _waiting_runs(demo: gr.Blocks, session: str) -> int:
    """How many Generate or Continue requests of this session wait in Gradio's queue, from the page or the API."""
    queues = demo._queue.event_queue_per_concurrency_id.values()
    return sum(e.session_hash == session and e.fn.api_name in RUNS for q in queues for e in list(q.queue))


def _wire_run_buttons(page: Layout, generate, continue_video, stop, apply) -> None:
    inputs = [*page.form, page.randomize]
    outputs = [page.metrics, page.fps_plot, page.download, page.seed]
    page.generate.click(generate, inputs, outputs, concurrency_id="gpu", concurrency_limit=1, api_name="generate")
    page.resume.click(continue_video, inputs, outputs, concurrency_id="gpu", concurrency_limit=1, api_name="continue")
    page.stop.click(stop, None, None, concurrency_limit=None, api_name="stop")
    page.apply.click(apply, [page.rows, page.unit, page.crossfade], None, concurrency_limit=None, api_name="apply_timeline")
    page.image.change(task_of, [page.image, page.video], page.mode, api_visibility="private")
    page.video.change(task_of, [page.image, page.video], page.mode, api_visibility="private")


def _wire_history(page: Layout, runs, play_run, load_run) -> None:
    """The table follows the runs: it is refreshed when a run's MP4 is offered, that is when the run ends."""
    page.download.change(runs, None, page.history, concurrency_limit=None, api_name="history", show_progress="hidden")
    page.play_run.click(play_run, page.run_pick, [page.run_video, page.run_files], concurrency_limit=None, api_name="play_run")
    settings = [page.rows, page.unit, page.crossfade, page.segments, page.steps, page.seed, page.resolution]
    page.load_run.click(load_run, page.run_pick, settings, concurrency_limit=None, api_name="load_run")
