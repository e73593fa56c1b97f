"""Torch-profiler summary of one warm Helios-Distilled segment ([2,2,2], 384x640, full-size random weights) in our
engine, with the top CUDA kernels by total time. Run on the GPU: `python benchmarks/profile_segment.py`."""

import torch
from diffusers import HeliosDMDScheduler
from torch.profiler import ProfilerActivity, profile

from helios.bench import build_transformer, build_vae, run_engine
from helios.engine import Engine
from helios.flavour import DISTILLED
from helios.loading import HeliosModel


def main():
    device = torch.device("cuda")
    transformer = build_transformer(device)
    model = HeliosModel(
        source="full-size random weights", folder=None, flavour=DISTILLED, is_tiny=False, device=device,
        dtype=torch.bfloat16, tokenizer=None, text_encoder=None, transformer=transformer,
        vae=build_vae(device, torch.bfloat16), scheduler=HeliosDMDScheduler(),
    )
    engine = Engine(model)
    engine.prompts.remember("benchmark", torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16) * 0.1)
    run_engine(engine, (2, 2, 2), 3)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run_engine(engine, (2, 2, 2), 2)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=70))


if __name__ == "__main__":
    main()
