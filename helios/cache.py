"""Where Helios Studio keeps what it makes once and reuses on this machine: tiny checkpoints, compiled kernels,
ahead-of-time compiled blocks, saved FP8 forms, the list of code files a start reads. Free of torch: a start asks for
it first."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("HELIOS_STUDIO_CACHE", Path.home() / ".cache" / "helios-studio"))


def fp8_form_cache() -> Path:
    """Saved FP8 forms of the transformer blocks (weights/fp8_saved.py), one folder per key."""
    return cache_dir() / "fp8"
