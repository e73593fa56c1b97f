"""`python -m benchmarks.gpu_soak --runs 50 --out FILE`: the in-process soak (`benchmarks.soak --in-process`) on a GPU
with full-size random weights built in GPU memory (the 14B transformer, the Wan VAE and a UMT5-XXL-shaped text
encoder, all resident), so a soak needs no 40 GB checkpoint on disk. Samples are written after every run."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from helios.engine import Engine
from helios.placement import Placement, WeightForm

from .bench import build_transformer, build_vae, place
from .random_checkpoint import build_text_encoder
from .soak import InProcess, soak, verdict_of


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--resolution", default="384x640")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("error: the GPU soak needs a CUDA GPU; on a CPU run python -m benchmarks.soak.")
    device = torch.device("cuda")
    start = time.perf_counter()
    parts = dict(transformer=build_transformer(device), vae=build_vae(device, torch.bfloat16),
                 text_encoder=build_text_encoder(device))
    engine = Engine(place(parts, Placement(weights=WeightForm(memory="resident")), device))
    print(f"built full-size random weights in {time.perf_counter() - start:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="helios-gpu-soak-") as workdir:
        target = InProcess(engine, Path(workdir), args.resolution)
        print(f"warmed up after {time.perf_counter() - start:.0f} s", flush=True)
        samples = soak(target, args.runs, out=args.out, model="full-size random weights",
                       resolution=args.resolution, in_process=True, gpu=torch.cuda.get_device_name())
    return verdict_of(samples)


if __name__ == "__main__":
    raise SystemExit(main())
