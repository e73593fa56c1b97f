"""What runs here, decided in one step: the tier and switches this GPU and host hold (`tiers.resolve`), then the
ahead-of-time compiled blocks (or, where this machine has none, their build beside the first run) and the saved FP8
form made for exactly that."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..cache import fp8_form_cache
from ..faster.aot import aot_cache, aot_key, choose
from ..placement import Placement
from ..weights import fp8_saved
from .capability import Capabilities
from .tiers import Fit, ModelSize, resolve


def decide(placement: Placement, caps: Capabilities, size: ModelSize, transformer_config: dict, dtype: torch.dtype,
           locate: Callable[[str], Path] = Path, checkpoint: Path | None = None) -> Fit:
    """`locate` finds the folder `--aot` names (the loader's also fetches one from the Hub); `checkpoint`: the folder
    the weights are read from (None: they are in memory, and no saved form is looked for)."""
    fit = resolve(placement, caps, size)
    faster = fit.placement.faster
    key = aot_key(transformer_config, dtype, fit, caps)
    own_kernels = faster.kernels or faster.attention == "fp8"
    folder, note = choose(faster.aot, key, aot_cache(), caps.ranks, own_kernels, locate)
    fit = fit.with_aot(folder, note)
    if folder is None and faster.aot == "auto" and faster.compile_blocks and caps.ranks == 1 and not own_kernels:
        fit = fit.building_aot(key)
    if not fit.tier.fp8_weights or checkpoint is None:
        return fit
    form = fp8_saved.form_key(checkpoint, key.weights, dtype)
    return fit.with_fp8_form(*fp8_saved.choose(form, transformer_config["num_layers"], fp8_form_cache()))
