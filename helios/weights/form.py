"""Where the transformer's weights live and in what form, as asked; `fit.tiers.resolve` says what this machine runs."""

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightForm:
    memory: str = "auto"
    """A memory tier by name, or "auto": the fastest tier whose weights this GPU and host hold (fit/tiers.py)."""
    fp8: bool = False
    """FP8 transformer weights on top of whatever the memory needs: half the bytes, FP8 matmuls on Ada and Hopper."""
    never_fp8: bool = False
    """No FP8 weights, whatever the memory needs: a comparison's bf16 side, whose form is what is compared (a tier
    that offloads or streams is chosen instead, or the load refused)."""
    fp8_linears: str = "torchao"
    """Whose FP8 linear layers: "torchao" (the library's, faster once compiled) or "ours" (weights/fp8.py)."""
