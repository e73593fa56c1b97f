"""FP8 opt-in: the transformer blocks' linear layers in float8 (e4m3) with row-wise scales, on Hopper's FP8
tensor cores through `torch._scaled_mm`. Faster matmuls at a measured cost in fidelity (benchmarks/README.md)."""

from __future__ import annotations

import torch
from torch import nn

E4M3_MAX = 448.0


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row scaled so its largest magnitude lands on e4m3's largest value; returns (fp8 values, fp32 scales)."""
    scale = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / E4M3_MAX
    return (t.float() / scale).to(torch.float8_e4m3fn), scale


class Float8Linear(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight, scale = quantize_rows(linear.weight.data)
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", scale.t().contiguous())
        self.bias = linear.bias
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


def to_float8(transformer: nn.Module) -> int:
    """Swap every nn.Linear inside the transformer blocks for a Float8Linear; returns how many were swapped."""
    swapped = 0
    for block in transformer.blocks:
        for name, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(module, child_name, Float8Linear(child))
                    swapped += 1
    return swapped
