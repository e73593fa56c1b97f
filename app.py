"""Helios Studio: `python app.py` starts the app. Without a GPU it runs the tiny random-weight preview model.

The page is served at once; the engine then warms up with one short run (on a GPU: compile, CUDA graphs) while the
page says so, and requests wait for it. Nothing here touches CUDA before the model is loaded, so a ZeroGPU Space can build the page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time

import torch

from helios.cli import add_placement_arguments, placement_from_args
from helios.engine import Engine
from helios.errors import HeliosError
from helios.limits import MAX_UPLOAD
from helios.loading import DEFAULT_MODEL, LoadOptions, load_model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Helios Studio: streaming Helios video generation in the browser.")
    parser.add_argument("--model", default=os.environ.get("HELIOS_MODEL"), help=f"hub id, local diffusers folder or 'tiny' (default: {DEFAULT_MODEL} on a GPU, tiny on a CPU)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    add_placement_arguments(parser)
    parser.add_argument("--no-warmup", action="store_true", help="take requests at once; the first one pays for compiling")
    parser.add_argument("--max-upload", default=MAX_UPLOAD, help="largest image or video a user may upload")
    return parser.parse_args(argv)


def choose_model(requested: str | None, options: LoadOptions):
    """Load the requested model; with none requested, the default on a GPU, else the tiny preview."""
    if requested:
        return load_model(requested, options), ""
    if not torch.cuda.is_available():
        return load_model("tiny", options), "No GPU found: running the tiny random-weight preview model on the CPU; its frames are noise. "
    try:
        return load_model(DEFAULT_MODEL, options), ""
    except HeliosError as exc:
        return load_model("tiny", options), f"{exc} Running the tiny random-weight preview instead; its frames are noise. "


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = [exe for exe in ("ffmpeg", "ffprobe") if shutil.which(exe) is None]
    if missing:
        print(f"error: the streaming player needs {' and '.join(missing)} on PATH: run scripts/system-deps.sh.", file=sys.stderr)
        return 1
    from studio.page import build_demo
    from studio.layout import CSS

    options = LoadOptions(placement=placement_from_args(args), gpu_memory_gib=args.gpu_memory)
    try:
        model, note = choose_model(args.model, options)
    except HeliosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    banner = note + model.describe()
    print(banner, flush=True)
    default_resolution = "128x192" if model.is_tiny and model.device.type == "cpu" else "384x640"
    engine = Engine(model)
    warm = not args.no_warmup and not model.capabilities.zero_gpu
    ready = threading.Event()
    if not warm:
        ready.set()
    demo = build_demo(engine, banner, default_resolution, ready)
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share, max_file_size=args.max_upload, css=CSS,
        prevent_thread_lock=warm,
    )
    if warm:
        warm_up(engine, default_resolution, ready)
        demo.block_thread()
    return 0


def warm_up(engine: Engine, resolution: str, ready: threading.Event) -> None:
    height, width = (int(v) for v in resolution.split("x"))
    print(f"warming up: one short run at {resolution} (on a GPU it compiles and captures CUDA graphs) ...", flush=True)
    start = time.perf_counter()
    engine.warm_up(height, width)
    ready.set()
    print(f"warm: ready for requests after {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
