"""`torchrun --nproc-per-node N -m benchmarks.context_parallel_probe [--no-compile] [--no-cuda-graphs] [--parallel P]`:
which of compiled blocks, CUDA graphs and ring attention run under context parallelism on this machine, on the tiny
model (seconds, not minutes). One JSON line from rank 0: the switches, the seconds for two segments, and with --vs
the frames' deviation from a one-GPU run saved with --out."""

from __future__ import annotations

import argparse
import faulthandler
import json
import time

import numpy as np

from helios.engine import Engine, EngineOptions
from helios.fit.tiers import Placement
from helios.loading import LoadOptions, load_model
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run, follow
from helios.timeline import PromptTimeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-cuda-graphs", action="store_true")
    parser.add_argument("--parallel", default="auto")
    parser.add_argument("--out")
    parser.add_argument("--vs")
    parser.add_argument("--stacks-after", type=float, help="print every thread's stack after this many seconds")
    args = parser.parse_args()
    if args.stacks_after:
        faulthandler.dump_traceback_later(args.stacks_after)
    placement = Placement(compile_blocks=not args.no_compile, parallel=args.parallel)
    model = load_model("tiny", LoadOptions(placement=placement))
    engine = Engine(model, EngineOptions(cuda_graphs=not args.no_cuda_graphs))
    if not model.ranks.leader:
        follow(engine)
        return
    settings = GenerationSettings(height=128, width=192, num_frames=66, pyramid_steps=(1, 1, 1), seed=3)
    request = GenerationRequest(PromptTimeline.single("a paper boat"), settings)
    try:
        start = time.perf_counter()
        frames = np.concatenate([s.frames for s in Run(engine, request).segments()])
        result = dict(vars(args), ranks=model.ranks.size, seconds=round(time.perf_counter() - start, 1))
        if args.out:
            np.save(args.out, frames)
        if args.vs:
            diff = np.abs(frames.astype(int) - np.load(args.vs))
            result.update(max_levels=int(diff.max()), mean_levels=round(float(diff.mean()), 4))
        print(json.dumps(result), flush=True)
    finally:
        model.ranks.dismiss()


if __name__ == "__main__":
    main()
