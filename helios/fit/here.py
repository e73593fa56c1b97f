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
from .tiers import DEFAULT_RESOLUTION, GIB, Fit, ModelSize, resolve, workspace_bytes

BUILD_CONTEXT = GIB
"""The build's child holds one block (bf16, `ModelSize.block_bytes`), its CUDA context and the autotuner's buffers
beside the run: a first start builds beside only where the run's memory for a default-size request leaves that."""


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
        budget = fit.workspace_budget
        if budget is None or budget - workspace_bytes(*DEFAULT_RESOLUTION) > size.block_bytes + BUILD_CONTEXT:
            fit = fit.building_aot(key)
        else:
            fit = fit.with_aot(None, "blocks compiled just in time: too little GPU memory to build their AoT package "
                                     "beside the run")
    return fit
