"""The Gradio page: timeline editor, uploads and settings on the left; the live stream and metrics on the right."""

from __future__ import annotations

import dataclasses
import html
import random
import tempfile
from pathlib import Path

import gradio as gr

from helios.engine import Engine
from helios.errors import HeliosError
from helios.media import read_video
from helios.timeline import FRAMES_PER_SEGMENT, PromptTimeline

from .form import MAX_SEGMENTS, RESOLUTIONS, STEP_PRESETS, build_request, rows_from_timeline, task_of, timeline_from_rows
from .session import StudioRun
from .uploads import ImageUpload, VideoUpload

ASSETS = Path(__file__).resolve().parents[1] / "assets"
GPU_SECONDS_PER_STEP = 0.6
CSS = """
.metrics-table th { text-align: left; padding-right: 1em; font-weight: 600; }
.banner { padding: .6em 1em; border-radius: 8px; background: #fef3c7; color: #78350f; }
"""


def _user_error(exc: Exception) -> gr.Error:
    if isinstance(exc, HeliosError):
        return gr.Error(str(exc), print_exception=False)
    return gr.Error(f"Generation failed unexpectedly ({type(exc).__name__}): {html.escape(str(exc))}")


def gpu_seconds(*args, **kwargs) -> int:
    """ZeroGPU's time budget for a request: its denoising steps at a measured-order cost, plus warm-up."""
    segments = kwargs.get("segments", args[5] if len(args) > 5 else 10)
    steps = kwargs.get("steps", args[6] if len(args) > 6 else "2,2,2")
    try:
        per_segment = sum(int(s) for s in str(steps).split(","))
    except ValueError:
        per_segment = 6
    return int(30 + int(segments) * (per_segment * GPU_SECONDS_PER_STEP + 0.5))


def build_demo(engine: Engine, banner: str, default_resolution: str) -> gr.Blocks:
    runs: dict[str, StudioRun] = {}
    flavour = engine.model.flavour
    example_timelines = {p.name: p for p in sorted((ASSETS / "timelines").glob("*")) if p.suffix in (".json", ".csv")}

    def stream(run: StudioRun, seed: int, request: gr.Request):
        previous = runs.get(request.session_hash)
        runs[request.session_hash] = run
        if previous is not None:
            previous.cleanup()
        try:
            for update in run.updates():
                yield (
                    str(update.clip) if update.clip else gr.skip(),
                    update.metrics.to_html(),
                    str(update.video) if update.video else (None if update.final else gr.skip()),
                    seed,
                )
        except Exception as exc:
            raise _user_error(exc) from None

    def generate(rows, unit, crossfade, image, video, segments, steps, seed, randomize, resolution, request: gr.Request):
        seed = random.randrange(2**31) if randomize else int(seed or 0)
        try:
            req = build_request(rows, unit, crossfade, image, video, segments, steps, seed, resolution)
            run = StudioRun(engine, req)
        except Exception as exc:
            raise _user_error(exc) from None
        yield from stream(run, seed, request)

    def extend(rows, unit, crossfade, image, video, segments, steps, seed, randomize, resolution, request: gr.Request):
        previous = runs.get(request.session_hash)
        if previous is not None and previous.metrics.state == "generating":
            raise gr.Error("A video is still being generated: wait for it or stop it, then continue.", print_exception=False)
        if previous is None or previous.video is None:
            raise gr.Error("Nothing to continue yet: generate a video first.", print_exception=False)
        seed = random.randrange(2**31) if randomize else int(seed or 0)
        try:
            req = build_request(rows, unit, crossfade, None, None, segments, steps, seed, resolution)
            frames = read_video(previous.video)
            req = dataclasses.replace(req, video=frames)
            run = StudioRun(engine, req, prelude=frames)
        except Exception as exc:
            raise _user_error(exc) from None
        yield from stream(run, seed, request)

    def stop(request: gr.Request):
        run = runs.get(request.session_hash)
        if run is not None and run.stop():
            gr.Info("Stopping after the current denoising step; what was made so far stays downloadable.")
        else:
            gr.Warning("Nothing is running: there is nothing to stop.")

    def apply(rows, unit, crossfade, request: gr.Request):
        run = runs.get(request.session_hash)
        if run is None or run.metrics.state != "generating":
            gr.Warning("Nothing is running: the timeline is used by the next Generate.")
            return
        try:
            run.apply_timeline(timeline_from_rows(rows, unit, crossfade))
        except Exception as exc:
            raise _user_error(exc) from None
        running = run.metrics.step.segment if run.metrics.step else 0
        gr.Info(f"New timeline applies from segment {running + 2}, the next one to start.")

    def forget(request: gr.Request):
        run = runs.pop(request.session_hash, None)
        if run is not None:
            run.stop()
            run.cleanup()

    def add_row(rows):
        rows = [list(r) for r in rows or []]
        last = float(rows[-1][0]) if rows and str(rows[-1][0]).strip() else -2.0
        return rows + [[last + 2, ""]]

    def remove_row(rows):
        rows = [list(r) for r in rows or []]
        return rows[:-1] if len(rows) > 1 else [[0, ""]]

    def sort_rows(rows):
        def key(row):
            try:
                return float(row[0])
            except (TypeError, ValueError):
                return float("inf")

        return sorted((list(r) for r in rows or []), key=key)

    def load_timeline(path):
        if not path:
            return gr.skip(), gr.skip(), gr.skip()
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            timeline = PromptTimeline.from_csv(text) if path.suffix.lower() == ".csv" else PromptTimeline.from_json(text)
        except UnicodeDecodeError:
            raise gr.Error(f"{path.name} is not a text file: import a timeline .json or .csv.", print_exception=False)
        except Exception as exc:
            raise _user_error(exc) from None
        return rows_from_timeline(timeline)

    def export(rows, unit, crossfade, kind):
        try:
            timeline = timeline_from_rows(rows, unit, crossfade)
            timeline.check()
        except Exception as exc:
            raise _user_error(exc) from None
        out = Path(tempfile.mkdtemp(prefix="helios-timeline-")) / f"timeline.{kind}"
        out.write_text(timeline.to_json() if kind == "json" else timeline.to_csv(), encoding="utf-8")
        return str(out)

    with gr.Blocks(title="Helios Studio") as demo:
        gr.Markdown("# Helios Studio\nReal-time, minute-long video with Helios, streamed while it is generated.")
        gr.HTML(f'<div class="banner" id="banner">{html.escape(banner)}</div>')
        with gr.Row():
            with gr.Column(scale=5):
                timeline_df = gr.Dataframe(
                    value=[[0, "A red fox trotting through fresh snow in a sunlit pine forest, cinematic"]],
                    headers=["start", "prompt"], datatype=["number", "str"], type="array", interactive=True,
                    column_count=2, label="Prompt timeline", elem_id="timeline", wrap=True, column_widths=["16%", "84%"],
                )
                with gr.Row():
                    add_btn = gr.Button("Add row", size="sm", elem_id="add-row")
                    remove_btn = gr.Button("Remove last row", size="sm")
                    sort_btn = gr.Button("Sort by start", size="sm")
                with gr.Row():
                    unit = gr.Radio(["seconds", "segments"], value="seconds", label="Start in")
                    crossfade = gr.Slider(0, 6, value=2, step=1, label="Crossfade (segments)")
                with gr.Accordion("Import / export timeline", open=False):
                    import_file = gr.File(label="Import .json or .csv", file_types=[".json", ".csv"], type="filepath")
                    example_pick = gr.Dropdown(list(example_timelines), label="Example timelines", value=None)
                    with gr.Row():
                        export_json = gr.Button("Export JSON", size="sm")
                        export_csv = gr.Button("Export CSV", size="sm")
                    exported = gr.File(label="Exported timeline", interactive=False)
                with gr.Row():
                    image = ImageUpload(label="Start from an image (optional)", type="filepath", sources=["upload"])
                    video = VideoUpload(label="Continue a video (optional)", sources=["upload"])
                mode = gr.Markdown(task_of(None, None), elem_id="mode")
                gr.Examples([[str(p)] for p in sorted((ASSETS / "images").glob("*.png"))], inputs=[image], label="Example images")
                gr.Examples([[str(p)] for p in sorted((ASSETS / "clips").glob("*.mp4"))], inputs=[video], label="Example clip")
                with gr.Row():
                    segments = gr.Slider(1, MAX_SEGMENTS, value=4, step=1, label=f"Length (segments of {FRAMES_PER_SEGMENT} frames)")
                    resolution = gr.Dropdown(list(RESOLUTIONS), value=default_resolution, label="Resolution (height x width)")
                with gr.Row():
                    steps = gr.Dropdown(
                        list(STEP_PRESETS), value=",".join(map(str, flavour.default_pyramid_steps or (2, 2, 2))),
                        allow_custom_value=True, label="Steps per stage", visible=flavour.pyramid,
                    )
                    seed = gr.Number(value=0, precision=0, label="Seed")
                    randomize = gr.Checkbox(value=False, label="Randomize seed")
                gr.Markdown(f"Model: `{html.escape(engine.model.label)}`", elem_id="model")
            with gr.Column(scale=6):
                live = gr.Video(label="Live", streaming=True, autoplay=True, elem_id="live", interactive=False)
                metrics = gr.HTML("<div class='metrics'>Press Generate to start.</div>", elem_id="metrics")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                    apply_btn = gr.Button("Apply timeline now", elem_id="apply")
                    continue_btn = gr.Button("Continue", elem_id="continue")
                download = gr.File(label="Download MP4", interactive=False, elem_id="download")

        form = [timeline_df, unit, crossfade, image, video, segments, steps, seed, randomize, resolution]
        outputs = [live, metrics, download, seed]
        gpu = _gpu_decorator()
        generate_btn.click(gpu(generate), form, outputs, concurrency_id="gpu", concurrency_limit=1, api_name="generate")
        continue_btn.click(gpu(extend), form, outputs, concurrency_id="gpu", concurrency_limit=1, api_name="continue")
        stop_btn.click(stop, None, None, concurrency_limit=None, api_name="stop")
        apply_btn.click(apply, [timeline_df, unit, crossfade], None, concurrency_limit=None, api_name="apply_timeline")
        add_btn.click(add_row, timeline_df, timeline_df, api_name=False)
        remove_btn.click(remove_row, timeline_df, timeline_df, api_name=False)
        sort_btn.click(sort_rows, timeline_df, timeline_df, api_name=False)
        import_file.upload(load_timeline, import_file, [timeline_df, unit, crossfade], api_name=False)
        example_pick.change(lambda name: load_timeline(example_timelines.get(name)), example_pick, [timeline_df, unit, crossfade], api_name=False)
        export_json.click(lambda r, u, c: export(r, u, c, "json"), [timeline_df, unit, crossfade], exported, api_name=False)
        export_csv.click(lambda r, u, c: export(r, u, c, "csv"), [timeline_df, unit, crossfade], exported, api_name=False)
        image.change(task_of, [image, video], mode, api_name=False)
        video.change(task_of, [image, video], mode, api_name=False)
        demo.unload(forget)
    return demo


def _gpu_decorator():
    """`spaces.GPU` with a duration computed from the request; on anything but a ZeroGPU Space it changes nothing."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return lambda fn: spaces.GPU(duration=gpu_seconds)(fn)


