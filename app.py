"""Helios Studio: `python app.py` starts the app. Without a GPU it runs the tiny random-weight preview model."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import torch

from helios.engine import Engine
from helios.errors import HeliosError
from helios.loading import DEFAULT_MODEL, load_model
from helios.speed import FastPaths



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Helios Studio: streaming Helios video generation in the browser.")
    parser.add_argument("--model", help=f"hub id, local diffusers folder or 'tiny' (default: {DEFAULT_MODEL} on a GPU, tiny on a CPU)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    parser.add_argument("--fp8", action="store_true", help="FP8 matmuls in the transformer (GPU only; faster, less exact)")
    parser.add_argument("--max-upload", default="200mb", help="largest image or video a user may upload")
    return parser.parse_args(argv)


def choose_model(requested: str | None):
    """Load the requested model; with none requested, the default on a GPU, else the tiny preview."""
    if requested:
        return load_model(requested), ""
    if not torch.cuda.is_available():
        return load_model("tiny"), "No GPU found: running the tiny random-weight preview model on the CPU; its frames are noise. "
    try:
        return load_model(DEFAULT_MODEL), ""
    except HeliosError as exc:
        return load_model("tiny"), f"{exc} Running the tiny random-weight preview instead; its frames are noise. "


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = [exe for exe in ("ffmpeg", "ffprobe") if shutil.which(exe) is None]
    if missing:
        print(f"error: the streaming player needs {' and '.join(missing)} on PATH: run scripts/system-deps.sh.", file=sys.stderr)
        return 1
    from studio.ui import CSS, build_demo

    try:
        model, note = choose_model(args.model)
    except HeliosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    banner = note + f"Model: {model.label} on {model.device.type.upper()}."
    print(banner, flush=True)
    default_resolution = "128x192" if model.is_tiny and model.device.type == "cpu" else "384x640"
    demo = build_demo(Engine(model, FastPaths(fp8=args.fp8)), banner, default_resolution)
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=args.max_upload, css=CSS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
