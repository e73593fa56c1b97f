"""What runs here, decided in one step: the tier and switches this GPU and host hold (`tiers.resolve`), then the
ahead-of-time compiled blocks made for exactly that, or, where this machine has none, their build beside the first
run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..faster.aot import aot_cache, aot_key, choose
from ..placement import Placement
from .capability import Capabilities
from .tiers import Fit, ModelSize, resolve


def decide(placement: Placement, caps: Capabilities, size: ModelSize, transformer_config: dict, dtype: torch.dtype,
           locate: Callable[[str], Path] = Path) -> Fit:
    """`locate` finds the folder `--aot` names (the loader's also fetches one from the Hub)."""
    fit = resolve(placement, caps, size)
    faster = fit.placement.faster
    key = aot_key(transformer_config, dtype, fit, caps)
    own_kernels = faster.kernels or faster.attention == "fp8"
    folder, note = choose(faster.aot, key, aot_cache(), caps.ranks, own_kernels, locate)
    fit = fit.with_aot(folder, note)
    if folder is None and faster.aot == "auto" and faster.compile_blocks and caps.ranks == 1 and not own_kernels:
        fit = fit.building_aot(key)
    return fit
