"""`python -m benchmarks.model_cache --model FOLDER`: the Compare tab's model cache on one GPU, through the code the
tab runs (`ModelChoices`, `run_with`, `RunRecord`), on a full-size checkpoint folder (`benchmarks.random_checkpoint`).

1. The app's model loads in bf16 from the folder and warms up; A (bf16, ours) runs SEGMENTS segments.
2. B asks for the FP8 form of the same checkpoint: it is copied from the loaded bf16 weights (bytes read from files
   during B's load are counted from /proc/self/io), warmed up, and runs SEGMENTS segments.
3. A then B again, both warm: B's first frame after A's last.
4. Ours against diffusers' pipeline on the same loaded components, 2 segments each: per-segment PSNR and SSIM, FPS.

One JSON line per phase (and appended to --out); the GPU's peak memory at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.json_lines import emit
from helios.difference import psnr_db
from helios.engine import Engine
from helios.loading import LoadOptions
from helios.measures import ssim
from helios.model_cache import load_model
from helios.record import RunRecord
from helios.reference import run_with
from helios.request import GenerationRequest, GenerationSettings
from helios.run import warm_up
from helios.segment import Segment
from helios.studio.models import LOADED, ModelChoices, SideModel
from helios.timeline import PromptTimeline

GIB = 2**30
PROMPT = "A red fox walks through fresh snow at dawn"


def read_bytes() -> int:
    """Bytes this process has read through read() calls, page cache or not."""
    return int(
        next(line for line in Path("/proc/self/io").read_text().splitlines() if line.startswith("rchar")).split()[1]
    )


def run_side(choices: ModelChoices, side: SideModel, request: GenerationRequest) -> dict:
    """Makes the side ready and runs it, as the Compare tab does; times are perf_counter seconds."""
    before = read_bytes()
    ready_at = time.perf_counter()
    used = choices.engine_for(side, request.settings.height, request.settings.width)
    read = read_bytes() - before
    run = run_with(used.engine, request, used.which)
    record = RunRecord(run)
    frames, segments = [], []
    for event in run:
        if isinstance(event, Segment):
            record.on_segment(event)
            segments.append(time.perf_counter())
            frames.append(event.frames)
    timings = record.recipe().timings
    return dict(
        side=f"{side.checkpoint}, {side.form or choices.own_form}, {side.engine}",
        tier=used.engine.model.fit.tier.name,
        load_and_warm_s=None if used.load_s is None else round(used.load_s, 2),
        read_gb_during_load=round(read / 1e9, 3),
        ready_at=ready_at,
        first_segment_at=segments[0],
        last_segment_at=segments[-1],
        fps=round(timings["overall_fps"], 2),
        first_frame_s=round(timings["first_frame_s"], 2),
        frames=np.concatenate(frames),
    )


def gpu_memory() -> dict:
    """What the GPU holds now and held at most; nothing on a CPU (a smoke run on the tiny model)."""
    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    return dict(
        gpu=torch.cuda.get_device_name(),
        gpu_allocated_gib=round(torch.cuda.memory_allocated() / GIB, 2),
        gpu_used_gib=round((total - free) / GIB, 2),
        gpu_peak_allocated_gib=round(torch.cuda.max_memory_allocated() / GIB, 2),
        gpu_peak_reserved_gib=round(torch.cuda.max_memory_reserved() / GIB, 2),
    )


def shown(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("frames", "ready_at", "first_segment_at", "last_segment_at")}


def per_segment(a: np.ndarray, b: np.ndarray) -> tuple[list[float], list[float]]:
    psnr, similarity = [], []
    for start in range(0, min(len(a), len(b)), 33):
        x, y = a[start:start + 33].astype(np.float64), b[start:start + 33].astype(np.float64)
        psnr.append(round(psnr_db(float(((x - y) ** 2).sum()), x.size), 2))
        similarity.append(
            round(float(np.mean([ssim(p, q) for p, q in zip(a[start : start + 33], b[start : start + 33])])), 4)
        )
    return psnr, similarity


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a full-size checkpoint folder")
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--steps", default="2,2,2")
    parser.add_argument("--size", default="384x640", help="HEIGHTxWIDTH")
    parser.add_argument("--gpu-memory", type=float, help="hold the process to this many GiB, as on a smaller card")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    steps = tuple(int(s) for s in args.steps.split(","))
    height, width = (int(v) for v in args.size.split("x"))

    def request(segments: int) -> GenerationRequest:
        settings = GenerationSettings(height=height, width=width, num_frames=33 * segments, pyramid_steps=steps, seed=7)
        return GenerationRequest(PromptTimeline.single(PROMPT), settings)

    start, before = time.perf_counter(), read_bytes()
    options = LoadOptions(gpu_memory_gib=args.gpu_memory)
    model = load_model(args.model, options)
    loaded = dict(phase="app model loaded (bf16, from the folder)", s=round(time.perf_counter() - start, 1),
                  read_gb=round((read_bytes() - before) / 1e9, 2), tier=model.fit.tier.name,
                  **gpu_memory())
    engine = Engine(model)
    start = time.perf_counter()
    warm_up(engine, height, width)
    emit(dict(loaded, warm_up_s=round(time.perf_counter() - start, 1)), args.out)

    choices = ModelChoices(engine, options)
    bf16, fp8 = SideModel(LOADED, "bf16"), SideModel(LOADED, "FP8")
    emit(dict(phase="plan before B", plan=choices.plan(fp8)), args.out)
    for round_ in ("first (B loads)", "again (both warm)"):
        a = run_side(choices, bf16, request(args.segments))
        b = run_side(choices, fp8, request(args.segments))
        emit(dict(phase=f"A then B, {round_}", a=shown(a), b=shown(b),
                  b_first_frame_after_a_end_s=round(b["first_segment_at"] - a["last_segment_at"], 2),
                  psnr_db_per_segment=per_segment(a["frames"], b["frames"])[0],
                  **gpu_memory()), args.out)

    ours = run_side(choices, SideModel(LOADED, "bf16", "ours"), request(2))
    reference = run_side(choices, SideModel(LOADED, "bf16", "diffusers"), request(2))
    psnr, similarity = per_segment(ours["frames"], reference["frames"])
    emit(dict(phase="ours against diffusers' pipeline, same components, 2 segments", ours=shown(ours),
              diffusers=shown(reference), psnr_db_per_segment=psnr, ssim_per_segment=similarity), args.out)
    emit(dict(phase="end", **gpu_memory()), args.out)


if __name__ == "__main__":
    main()
