"""Helios Studio: `python app.py` starts the app. Without a GPU it runs the tiny random-weight preview model.

The page is served at once; the engine then warms up with one short run (on a GPU: compile, CUDA graphs) while the
page says so, and requests wait for it. On a ZeroGPU Space `spaces` is imported first and nothing touches CUDA
outside its GPU calls (the model is filled on the CPU and handed to `spaces`, which moves it into each call).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

from helios.startup import read_ahead_from_here

read_ahead_from_here(sys.argv[1:])  # before torch: a cold disk is what a start waits on

import torch

from helios import DEFAULT_MODEL
from helios.arguments import Parser, add_lora_argument, add_placement_arguments, load_options_from_args
from helios.errors import HeliosError
from helios.limits import MAX_UPLOAD, Limits
from helios.loading import LoadOptions
from helios.model_cache import load_model
from helios.run import follow, warm_up
from helios.studio.gpu import import_spaces_first
from helios.studio.settings import StudioSettings


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a number from 1 to 65535")
    return int(text)


def _at_least(low: int):
    def whole(text: str) -> int:
        if not text.isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {low} or more")
        return int(text)
    return whole


def _size(text: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*(b|kb|mb|gb)", text.strip().lower()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write it like 200mb or 1gb")
    return text


def check_address(host: str, port: int) -> str | None:
    """Why the app could not listen on host:port, in words, or None; checked before minutes of model loading."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except socket.gaierror:
        return f"--host {host} is not an address of this machine: use 127.0.0.1, or 0.0.0.0 for every interface."
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} is in use: stop what uses it or pass --port with a free one."
        return f"cannot listen on {host}:{port} ({exc.strerror}): change --host or --port."
    return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(prog="app.py", description="Helios Studio: streaming Helios video generation in the browser.")
    parser.add_argument(
        "--model",
        default=os.environ.get("HELIOS_MODEL"),
        help=f"hub id, local diffusers folder or 'tiny' (default: {DEFAULT_MODEL} on a GPU, tiny on a CPU)",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=_port, default=os.environ.get("GRADIO_SERVER_PORT", "7860"))
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    add_placement_arguments(parser)
    add_lora_argument(parser)
    parser.add_argument("--compare-model", action="append", default=[], metavar="FOLDER",
                        help="a local diffusers-layout Helios folder the Compare tab may also load (repeatable)")
    parser.add_argument(
        "--no-warmup", action="store_true", help="take requests at once; the first one pays for compiling"
    )
    parser.add_argument("--max-upload", type=_size, default=MAX_UPLOAD, help="largest image or video a user may upload")
    parser.add_argument("--max-segments", type=_at_least(2), default=Limits.max_segments,
                        help="the longest video one request may ask for, in segments of 33 frames (2 or more)")
    parser.add_argument(
        "--max-steps", type=_at_least(1), default=Limits.max_steps, help="the most denoising steps per stage"
    )
    parser.add_argument("--session-idle-minutes", type=float, default=StudioSettings.idle_release_s / 60,
                        help="release a quiet session and its files after this long")
    parser.add_argument("--runs-disk-gib", type=float, default=StudioSettings.disk_cap_bytes / 2**30,
                        help="keep the runs' files under this much disk, the least recently used removed first")
    parser.add_argument(
        "--monitoring",
        action="store_true",
        help="serve Gradio's traffic summary at /monitoring/summary (open to anyone who reaches the app)",
    )
    return parser.parse_args(argv)


def choose_model(requested: str | None, options: LoadOptions):
    """Load the requested model; with none requested, the default on a GPU, else the tiny preview."""
    if requested:
        return load_model(requested, options), ""
    if not torch.cuda.is_available():
        return load_model("tiny", options), "No GPU found, so the app runs its preview model in place of Helios. "
    try:
        return load_model(DEFAULT_MODEL, options), ""
    except HeliosError as exc:
        return load_model("tiny", options), f"{exc} The app runs its preview model in place of Helios. "


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except HeliosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    import_spaces_first()
    missing = [exe for exe in ("ffmpeg", "ffprobe") if shutil.which(exe) is None]
    if missing:
        print(
            f"error: the Compare tab's live players need {' and '.join(missing)} on PATH: run scripts/system-deps.sh.",
            file=sys.stderr,
        )
        return 1
    folders = tuple(Path(folder).expanduser() for folder in args.compare_model)
    for folder in folders:
        if not (folder / "model_index.json").is_file():
            print(
                f"error: --compare-model {folder} has no model_index.json: give a Helios checkpoint folder in "
                "diffusers "
                "layout.",
                file=sys.stderr,
            )
            return 2
    problem = check_address(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not _loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach port {args.port} can use this GPU "
            "(the app has no login); use --host 127.0.0.1 to keep it to this machine.", file=sys.stderr,
        )
    from helios.engine import Engine, EngineOptions  # diffusers: imported once the flags are known good

    options = load_options_from_args(args)
    try:
        model, note = choose_model(args.model, options)
    except HeliosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    engine = Engine(model, EngineOptions(limits=Limits(args.max_segments, args.max_steps)))
    if not model.ranks.leader:
        follow(engine)
        return 0
    try:
        return serve(args, engine, note + model.describe(), options, folders)
    finally:
        model.ranks.dismiss()


def serve(args, engine, banner: str, options: LoadOptions = LoadOptions(), compare_folders: tuple = ()) -> int:
    """Rank 0's part (the only one without torchrun): the page, and the runs it asks for."""
    from helios.studio.live_stream import LiveStreams
    from helios.studio.models import ModelChoices
    from helios.studio.page import CSS, build_demo
    from helios.studio.scripts import page_script

    model = engine.model
    print(banner, flush=True)
    default_resolution = "64x128" if model.is_tiny and model.device.type == "cpu" else largest_fitting(model)
    if default_resolution is None:
        print(f"error: no size the page offers fits this GPU's memory beside the {model.fit.tier.name} tier's "
              "weights: choose a tier that keeps less on the GPU (--memory auto).", file=sys.stderr)
        return 1
    warm = not args.no_warmup and not model.capabilities.zero_gpu
    ready = threading.Event()
    if not warm:
        ready.set()
    settings = StudioSettings(
        args.session_idle_minutes * 60, int(args.runs_disk_gib * 2**30), monitoring=args.monitoring,
        loras=tuple(args.lora),
    )
    live = LiveStreams(settings.live_streams_kept)
    choices = ModelChoices(engine, options, compare_folders)
    demo = build_demo(engine, banner, default_resolution, ready, settings, live, choices)
    if not settings.monitoring:
        os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(settings.analytics_events))
    demo.queue(default_concurrency_limit=1, max_size=settings.queue_size)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=args.max_upload,
        css=CSS,
        js=page_script(),
        prevent_thread_lock=True,
        state_session_capacity=settings.session_states,
        mcp_server=True,
        enable_monitoring=settings.monitoring,
        run_history=settings.run_history,
    )
    live.mount(demo.app)
    if warm:
        warm_up_then_ready(engine, default_resolution, ready)
    demo.block_thread()
    return 0


def largest_fitting(model) -> str | None:
    """The page's largest resolution that the model's GPU memory holds (a small card's is below 384x640); None where
    a tier forced by name leaves room for none."""
    from helios.studio.form import RESOLUTIONS

    return next((name for name, size in RESOLUTIONS.items() if model.fit.fits(*size)), None)


def warm_up_then_ready(engine, resolution: str, ready: threading.Event) -> None:
    height, width = (int(v) for v in resolution.split("x"))
    print(f"warming up: one short run at {resolution} (on a GPU it compiles and captures CUDA graphs) ...", flush=True)
    start = time.perf_counter()
    warm_up(engine, height, width)
    ready.set()
    print(f"warm: ready for requests after {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
