"""Torch-profiler summaries, before and after: diffusers' HeliosPyramidPipeline and our engine each generating
the same warm 2-segment Helios-Distilled video ([2,2,2], 384x640, full-size random weights, the transformer's
blocks compiled for both), top CUDA kernels by total time.
Run on the GPU: `python benchmarks/profile_segment.py [--kernels] --out DIR` (writes DIR/profile-*.txt)."""

import argparse
import functools
from pathlib import Path

import torch
from diffusers import HeliosDMDScheduler, HeliosPyramidPipeline
from torch.profiler import ProfilerActivity, profile

from benchmarks.bench import build_transformer, build_vae, place, run_engine, run_reference
from helios.engine import Engine
from helios.fit.tiers import Placement

STEPS, SEGMENTS = (2, 2, 2), 2


def table(run) -> str:
    run()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=70)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", action="store_true", help="our engine with the Triton kernels switched in")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    device = torch.device("cuda")
    transformer = build_transformer(device)
    transformer.set_attention_backend("_native_cudnn")
    transformer.compile_repeated_blocks(fullgraph=True)
    embeds = torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16) * 0.1

    pipe = HeliosPyramidPipeline(
        tokenizer=None, text_encoder=None, vae=build_vae(device, torch.float32), scheduler=HeliosDMDScheduler(),
        transformer=transformer, is_distilled=True,
    )
    pipe.set_progress_bar_config(disable=True)
    reference = table(functools.partial(run_reference, pipe, embeds, STEPS, SEGMENTS))
    del pipe, transformer
    torch._dynamo.reset()

    parts = dict(transformer=build_transformer(device), vae=build_vae(device, torch.bfloat16), text_encoder=None)
    engine = Engine(place(parts, Placement(memory="resident", kernels=args.kernels), device))
    engine.prompts.remember("benchmark", embeds)
    ours = table(lambda: run_engine(engine, STEPS, SEGMENTS))

    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in [("reference", reference), ("engine" + ("-kernels" if args.kernels else ""), ours)]:
        (args.out / f"profile-{name}.txt").write_text(text)
        print(f"== {name} ==\n{text}", flush=True)


if __name__ == "__main__":
    main()
