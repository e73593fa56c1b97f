"""`python -m benchmarks.fp8_linear`: one transformer block's linear layers (q, k, v, o at 5120x5120, the FFN's
5120->13824->5120) on 11,000 tokens (a segment with its history at 384x640), compiled, in each way the FP8 tiers could
run them: our `Float8Linear` against torchao's configs, bf16 for scale. Reports ms per pass, the TFLOP/s reached and
the error against an fp32 product, each compiled with and without Inductor's kernel tuning (the table of issue 11
had torchao's rows tuned and ours not: torchao's configs turned the tuning on for the whole process). Needs torchao
(`pip install torchao`) for its rows.
"""

from __future__ import annotations

import copy
import itertools
import json

import torch
from torch import nn

from helios.faster.aot import TUNING
from helios.weights.fp8 import block_to_float8

TOKENS, DIM, FFN = 11_000, 5120, 13824


class BlockLinears(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(DIM, DIM) for _ in range(4))
        self.up, self.down = nn.Linear(DIM, FFN), nn.Linear(FFN, DIM)

    def forward(self, x):
        x = self.o(self.q(x) + self.k(x) + self.v(x))
        return self.down(nn.functional.gelu(self.up(x), approximate="tanh"))


FLOPS = 2 * TOKENS * (4 * DIM * DIM + 2 * DIM * FFN)


def torchao(config_name: str, **kwargs):
    def apply(module):
        import torchao.quantization as q

        settings = {k: (getattr(q, v)() if isinstance(v, str) else v) for k, v in kwargs.items()}
        config = getattr(q, config_name)(set_inductor_config=False, **settings)
        q.quantize_(module, config)
    return apply


def ours(fp8_matmul: bool):
    def apply(module):
        block_to_float8(module, fp8_matmul)
    return apply


VARIANTS = {
    "bf16": lambda m: None,
    "ours: Float8Linear, FP8 matmul, row-wise scales": ours(True),
    "torchao: Float8DynamicActivationFloat8WeightConfig(PerRow)": torchao("Float8DynamicActivationFloat8WeightConfig", granularity="PerRow"),
    "ours: Float8Linear weight-only (FP8 storage, bf16 matmul)": ours(False),
    "torchao: Float8WeightOnlyConfig": torchao("Float8WeightOnlyConfig"),
    "torchao: Int8WeightOnlyConfig": torchao("Int8WeightOnlyConfig"),
}


def main() -> int:
    device = torch.device("cuda")
    torch.manual_seed(0)
    base = BlockLinears().to(device, torch.bfloat16).eval().requires_grad_(False)
    with torch.no_grad():
        for p in base.parameters():
            p.normal_(0, 0.02)
    x = torch.randn(1, TOKENS, DIM, device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        reference = copy.deepcopy(base).float()(x.float())
    rows = []
    for (name, apply), tuned in itertools.product(VARIANTS.items(), (False, True)):
        module = copy.deepcopy(base)
        try:
            apply(module)
            run = torch.compile(module, fullgraph=False, options=TUNING if tuned else None)
            with torch.no_grad():
                for _ in range(3):
                    y = run(x)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(20):
                    y = run(x)
                end.record()
                end.synchronize()
            ms = start.elapsed_time(end) / 20
            error = ((y.float() - reference).norm() / reference.norm()).item()
            row = dict(variant=name, tuned=tuned, ms=round(ms, 3), tflops=round(FLOPS / ms / 1e9, 1), relative_error=round(error, 5))
        except Exception as exc:
            row = dict(variant=name, tuned=tuned, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        print(json.dumps(row), flush=True)
        rows.append(row)
        del module
        torch._dynamo.reset()
    print("\n| variant | kernels tuned | ms per pass | TFLOP/s | relative error vs fp32 |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['tuned']} | {r.get('ms', r.get('error'))} | {r.get('tflops', '')} | {r.get('relative_error', '')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
