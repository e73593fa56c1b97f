"""The transformer blocks' linear layers in float8 (e4m3) with row-wise scales: half the bytes of bf16.

Where the GPU has FP8 tensor cores (Ada, Hopper) the matmul itself runs in FP8 through `torch._scaled_mm`: faster,
at a measured cost in fidelity (benchmarks/README.md). Elsewhere (Ampere, the CPU) only the storage is FP8: the
weight is widened to the activations' dtype for each product, which costs little next to the matmul itself.

Two implementations of the same math: torchao's quantization configs (the library, the default) and our
`Float8Linear`; `Placement.fp8_linears` picks one so the benchmark can measure both in the compiled blocks."""

from __future__ import annotations

import torch
from torch import nn

E4M3_MAX = 448.0


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row scaled so its largest magnitude lands on e4m3's largest value; returns (fp8 values, fp32 scales)."""
    scale = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / E4M3_MAX
    return (t.float() / scale).to(torch.float8_e4m3fn), scale


class Float8Linear(nn.Module):
    """Its FP8 weight and scales are parameters, not buffers, so whatever moves a module's parameters moves them too
    (diffusers' group offloading leaves buffers behind: FP8 layers once kept 3.4 GiB of the text encoder on the GPU
    for a whole run, measured on the H200)."""

    def __init__(self, linear: nn.Linear, fp8_matmul: bool = True):
        super().__init__()
        weight, scale = quantize_rows(linear.weight.data)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.weight_scale = nn.Parameter(scale.t().contiguous(), requires_grad=False)
        self.bias = linear.bias
        self.out_features = linear.out_features
        self.fp8_matmul = fp8_matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fp8_matmul:
            weight = self.weight.to(x.dtype) * self.weight_scale.t().to(x.dtype)
            return nn.functional.linear(x, weight, self.bias)
        rows = x.reshape(-1, x.shape[-1])
        xq, x_scale = quantize_rows(rows)
        y = torch._scaled_mm(xq, self.weight.t(), scale_a=x_scale, scale_b=self.weight_scale, out_dtype=x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def dequantized_linear(x: torch.Tensor, layer: Float8Linear) -> torch.Tensor:
    """The same product computed from the dequantized operands in fp32: what Float8Linear must match."""
    rows = x.reshape(-1, x.shape[-1])
    xq, x_scale = quantize_rows(rows)
    w = layer.weight.float() * layer.weight_scale.t()
    y = (xq.float() * x_scale) @ w.t()
    if layer.bias is not None:
        y = y + layer.bias.float()
    return y.reshape(*x.shape[:-1], layer.out_features)


def swap_linears(root: nn.Module, make, keep: tuple[str, ...] = ()) -> int:
    """Every nn.Linear inside `root`, except those named in `keep`, replaced by `make(linear)` in place; returns how
    many."""
    swapped = 0
    for module in list(root.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and name not in keep:
                setattr(module, name, make(child))
                swapped += 1
    return swapped


def apply_float8(block: nn.Module, fp8_matmul: bool = True, library: str = "ours") -> int:
    """Every nn.Linear inside one block to FP8, in place; returns how many were converted."""
    if library == "torchao":
        return _torchao(block, fp8_matmul)
    return swap_linears(block, lambda linear: Float8Linear(linear, fp8_matmul))


def to_float8(transformer: nn.Module, fp8_matmul: bool = True, library: str = "ours") -> int:
    return sum(apply_float8(block, fp8_matmul, library) for block in transformer.blocks)


def _torchao(block: nn.Module, fp8_matmul: bool) -> int:
    """Row-wise dynamic activation scales with FP8 matmuls, or FP8 weight-only storage: torchao's Float8Tensor."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        PerRow,
        quantize_,
    )

    count = sum(isinstance(m, nn.Linear) for m in block.modules())
    # Left to itself, each config turns on Inductor's coordinate-descent tuning for the whole process: 60 of the 86 s
    # a tiny model's FP8 blocks took to compile on a fresh H200 (benchmarks/README.md). Where tuning pays is ours to
    # say.
    config = (Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False) if fp8_matmul
              else Float8WeightOnlyConfig(set_inductor_config=False))
    quantize_(block, config)
    return count
