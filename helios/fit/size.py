"""How many bytes each part of a checkpoint takes in bf16, read from the safetensors headers: the memory tier is
chosen before a single weight is loaded."""

from __future__ import annotations

import functools
import math
from pathlib import Path

from ..stored import stored_tensors
from .tiers import ModelSize

BF16 = 2
EMBEDDING_NAMES = ("shared.weight", "encoder.embed_tokens.weight")
"""UMT5's token embedding, stored under either name (or both, one tied to the other)."""


def _shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    return {name: stored.shape for name, stored in stored_tensors(folder).items()}


def model_size(checkpoint: Path) -> ModelSize:
    """Measured once per checkpoint as it is on disk (a file rewritten is measured again): the model cache asks at
    every load and for every model a load might release."""
    files = [
        f for part in ("transformer", "text_encoder", "vae") for f in sorted((checkpoint / part).glob("*.safetensors"))
    ]
    return _measured(checkpoint, tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.lru_cache(maxsize=16)
def _measured(checkpoint: Path, stamp: tuple) -> ModelSize:
    transformer = _shapes(checkpoint / "transformer")
    blocks = {int(name.split(".")[1]) for name in transformer if name.startswith("blocks.")}

    def numel(names) -> int:
        return sum(math.prod(transformer[n]) for n in names)

    block0 = [n for n in transformer if n.startswith("blocks.0.")]
    linear = [n for n in block0 if n.endswith(".weight") and len(transformer[n]) == 2]
    text = _shapes(checkpoint / "text_encoder")
    passing = [n for n in text if n.startswith(("encoder.block.0.", "encoder.block.1."))]
    text_linear = [
        n for n in text if n.startswith("encoder.block.") and len(text[n]) == 2 and n.endswith(".weight")
        and "relative_attention_bias" not in n
    ]
    return ModelSize(
        blocks=len(blocks),
        block_bytes=numel(block0) * BF16,
        block_linear_bytes=numel(linear) * BF16,
        transformer_other_bytes=numel(n for n in transformer if not n.startswith("blocks.")) * BF16,
        text_bytes=sum(math.prod(s) for s in text.values()) * BF16,
        vae_bytes=sum(math.prod(s) for s in _shapes(checkpoint / "vae").values()) * BF16,
        text_passing_bytes=sum(math.prod(text[n]) for n in passing) * BF16,
        text_linear_bytes=sum(math.prod(text[n]) for n in text_linear) * BF16,
        text_embedding_bytes=max((math.prod(text[n]) for n in EMBEDDING_NAMES if n in text), default=0) * BF16,
    )
