"""Microbenchmark of the Triton kernels against their PyTorch references (eager and torch.compile), at the size
of one full-resolution Helios segment with history (11,040 tokens x 5120). Run on the GPU:
`python benchmarks/kernel_bench.py`."""

import json

import torch
import triton

from kernels.adaln_norm import adaln_norm, adaln_norm_reference


def main():
    torch.manual_seed(0)
    tokens, d = 11040, 5120
    x = torch.randn(1, tokens, d, device="cuda", dtype=torch.bfloat16)
    scale = torch.randn(1, tokens, d, device="cuda") * 0.2
    shift = torch.randn(1, tokens, d, device="cuda") * 0.2
    moved = x.numel() * (2 + 4 + 4 + 2)
    compiled = torch.compile(adaln_norm_reference)
    rows = []
    for name, fn in [("eager reference", adaln_norm_reference), ("torch.compile reference", compiled), ("triton", adaln_norm)]:
        ms = triton.testing.do_bench(lambda: fn(x, scale, shift), warmup=50, rep=300, return_mode="median")
        rows.append(dict(kernel="adaln_norm", variant=name, ms=round(ms, 4), gbps=round(moved / ms / 1e6, 1)))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| kernel | variant | ms | GB/s (bytes read + written) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['kernel']} | {r['variant']} | {r['ms']} | {r['gbps']} |")


if __name__ == "__main__":
    main()
