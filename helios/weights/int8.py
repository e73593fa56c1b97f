"""The text encoder of the FP8 tiers, which keep it in host memory, in int8 rows: each row of a weight (a linear
layer's, or the token embedding's) stored as int8 with a scale of its own, half the bytes of bf16.

FP8's e4m3 keeps 3 bits of mantissa; int8's evenly spaced steps keep about 7 for the values near a row's largest, and
the text encoder runs once per new prompt, so the weight is widened to the activations' dtype for each product and no
int8 matmul is needed. On UMT5-XXL-shaped random weights its embeddings move about half as far from the bf16 ones
as FP8's do (benchmarks/README.md), and UMT5 leaves an int8 `wo` alone where it would cast its input to an FP8 one,
so every linear layer can be stored this way."""

from __future__ import annotations

import torch
from torch import nn

from .fp8 import swap_linears

INT8_MAX = 127


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row scaled so its largest magnitude lands on 127; returns (int8 values, fp32 scales of shape (rows, 1)).
    Every value comes back within half a step, 1/254 of its row's largest."""
    scale = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / INT8_MAX
    return (t.float() / scale).round().clamp(-INT8_MAX, INT8_MAX).to(torch.int8), scale


class Int8Linear(nn.Module):
    """Weight and scales are parameters, not buffers, so diffusers' group offloading takes them back to host memory
    after each pass (it leaves buffers on the GPU)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight, scale = quantize_rows(linear.weight.data)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.weight_scale = nn.Parameter(scale, requires_grad=False)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.to(x.dtype) * self.weight_scale.to(x.dtype), self.bias)


def apply_int8(layer: nn.Module) -> int:
    """Every nn.Linear inside one layer to int8 rows, in place; returns how many."""
    return swap_linears(layer, Int8Linear)
