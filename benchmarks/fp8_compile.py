"""`python -m benchmarks.fp8_compile --linears torchao|ours`: what compiling FP8 blocks costs, per block and per
input shape, the way the engine compiles them (each block its own `torch.compile`, as `compile_repeated_blocks`
does). The inputs are every distinct shape a block meets in a tiny model's eager 2-segment run (the pyramid's
stages, with and without history); the blocks are that model's, in bf16, turned to FP8. Run it twice on one
`TORCHINDUCTOR_CACHE_DIR` for the cold and the kept cache. Issue 20 asks why torchao's FP8 blocks took 259 s to
compile on a fresh H200 where our `Float8Linear` blocks took ~50 s. It was neither per-block recompiles nor the
shapes: torchao's configs turned on Inductor's coordinate-descent tuning for the whole process (60 of 86 s here on
the H200); they no longer do, and `--tune` turns it on to measure what the tuning costs and buys."""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from benchmarks.json_lines import emit


def block_inputs(device: torch.device) -> tuple[list, list[tuple]]:
    """The tiny model's blocks and block 0's (args, kwargs) for each distinct input shape of an eager run on the CPU,
    moved to `device`."""
    from diffusers.models.transformers import transformer_helios

    from helios import cli, loading

    seen, forward = {}, transformer_helios.HeliosTransformerBlock.forward

    def noted(self, *args, **kwargs):
        shape = tuple(tuple(a.shape) if torch.is_tensor(a) else a for a in (*args, *kwargs.values()))
        seen.setdefault(shape, (args, kwargs))
        return forward(self, *args, **kwargs)

    transformer_helios.HeliosTransformerBlock.forward = noted
    try:
        cli.main(["generate", "--model", "tiny", "--prompt", "probe", "--frames", "66", "--steps", "1,1,1", "--height",
                  "64", "--width", "128", "--device", "cpu", "--out", "/tmp/fp8-compile-probe.npy"])
    finally:
        transformer_helios.HeliosTransformerBlock.forward = forward
    (model,) = loading._models.values()

    def moved(a):
        if not torch.is_tensor(a):
            return a
        return a.to(device, torch.bfloat16 if a.is_floating_point() else a.dtype)

    calls = [(tuple(moved(a) for a in args), {k: moved(v) for k, v in kwargs.items()}) for args, kwargs in seen.values()]
    return list(model.transformer.blocks), calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--linears", choices=("torchao", "ours"), required=True)
    parser.add_argument("--weight-only", action="store_true", help="FP8 weights, bf16 matmuls")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--tune", action="store_true", help="Inductor's coordinate-descent tuning, as AoT builds use")
    parser.add_argument("--out", type=Path, help="appends one JSON line")
    args = parser.parse_args()
    if not torch.cuda.is_available():  # torchao refuses FP8 matmuls without an FP8 GPU; its eager kernels run anyway
        import torchao.quantization.quant_api as quant_api

        quant_api._check_hardware_support = lambda *a, **k: None
    from torch._dynamo.utils import compile_times, counters

    from helios.faster.aot import TUNING
    from helios.weights.fp8 import block_to_float8

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny_blocks, calls = block_inputs(device)
    blocks = [copy.deepcopy(tiny_blocks[i % len(tiny_blocks)]).to(device, torch.bfloat16) for i in range(args.blocks)]
    for block in blocks:
        block_to_float8(block, not args.weight_only, args.linears)
        block.compile(fullgraph=True, options=TUNING if args.tune else None)
    seconds = []
    with torch.no_grad():
        for call_args, call_kwargs in calls:
            seconds.append([])
            for block in blocks:
                start = time.perf_counter()
                block(*call_args, **call_kwargs)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds[-1].append(round(time.perf_counter() - start, 2))
    result = dict(linears=args.linears, matmul="weight-only" if args.weight_only else "fp8", tuned=args.tune, device=str(device),
                  shapes=len(calls), graphs=counters["stats"]["unique_graphs"], seconds_per_shape_and_block=seconds,
                  total_s=round(sum(map(sum, seconds)), 1), inductor_counters=dict(counters["inductor"]),
                  phases=dict(zip(*compile_times(repr="csv", aggregate=True))))
    emit(result, args.out)


if __name__ == "__main__":
    main()
