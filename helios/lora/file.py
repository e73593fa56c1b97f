"""A LoRA adapter as a user names it (`PATH[:STRENGTH]`), and its weights as the side path takes them.

The file is a safetensors one (a pickle could run code); diffusers' Helios loader converts its keys, so the Wan/ComfyUI
and musubi styles it reads are read here too (`HeliosLoraLoaderMixin.lora_state_dict`). Each targeted linear gets
`down` (rank x in), `up` (out x rank), `up`'s bias if any, and PEFT's scale, alpha / rank (alpha / sqrt(rank) with
rsLoRA) from the file's diffusers metadata, else 1: what `load_lora_weights` sets, so the frames match diffusers'."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import BadInput

MAX_STRENGTH = 2.0
"""Strengths run from -MAX_STRENGTH to MAX_STRENGTH: past about 2 a LoRA only burns the picture."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_strength(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{where}: a LoRA strength must be a number (got {value!r}).")
    if abs(value) > MAX_STRENGTH:
        raise BadInput(
            f"{where}: a LoRA strength must be between -{MAX_STRENGTH:g} and {MAX_STRENGTH:g} (got {value})."
        )
    return float(value)


@dataclass(frozen=True)
class LoraFile:
    """One adapter: its file, and the strength it has wherever the timeline does not set one."""

    path: Path
    strength: float = 1.0
    sha256: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return self.path.stem

    @classmethod
    def parse(cls, text: str) -> "LoraFile":
        """`PATH[:STRENGTH]`, as `--lora` takes it; the file is hashed here (the recipe records the digest)."""
        path, sep, tail = str(text).rpartition(":")
        if not sep or not path.lower().endswith(".safetensors"):
            return cls.of(Path(text))
        try:
            strength = float(tail)
        except ValueError:
            raise BadInput(
                f"LoRA {Path(path).name}: the strength after ':' must be a number, like {Path(path).name}:0.8 (got "
                f"{tail!r})."
            ) from None
        return cls.of(Path(path), strength)

    @classmethod
    def of(cls, path: Path, strength: float = 1.0) -> "LoraFile":
        path = Path(path)
        check_strength(strength, f"LoRA {path.name}")
        if path.suffix.lower() != ".safetensors":
            raise BadInput(f"LoRA {path.name} must be a .safetensors file (other formats can run code when read).")
        if not NAME.match(path.stem):
            raise BadInput(
                f"LoRA {path.name}: its name (the file's stem) names it in timelines, so use letters, digits, '.', '_' "
                "and '-' only."
            )
        if not path.is_file():
            raise BadInput(f"No LoRA file at {path}: check the path.")
        stat = path.stat()
        return cls(path, strength, _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LoraLayer:
    down: torch.Tensor
    up: torch.Tensor
    bias: torch.Tensor | None
    scale: float

    @property
    def rank(self) -> int:
        return self.down.shape[0]


def read_layers(file: LoraFile) -> dict[str, LoraLayer]:
    """The adapter's layers by the transformer's module names (`blocks.0.attn1.to_q`)."""
    from diffusers.loaders.lora_pipeline import HeliosLoraLoaderMixin
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file.path), framework="pt") as f:
            state = {key: f.get_tensor(key) for key in f.keys()}
            metadata = json.loads((f.metadata() or {}).get("lora_adapter_metadata", "null") or "null")
        state = HeliosLoraLoaderMixin.lora_state_dict(state)
    except (SafetensorError, OSError, ValueError, KeyError, IndexError) as exc:
        raise BadInput(f"LoRA {file.path.name} is not a LoRA file diffusers can read ({exc})."[:300]) from None
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = re.match(r"^(?:transformer\.)?(.+)\.(lora_A\.weight|lora_B\.weight|lora_B\.bias)$", key)
        if match is None:
            raise BadInput(f"LoRA {file.path.name} holds {key!r}, which is no LoRA weight: give a LoRA adapter file.")
        parts.setdefault(match[1], {})[match[2]] = tensor
    if not parts:
        raise BadInput(f"LoRA {file.path.name} holds no LoRA weights: give a LoRA adapter file.")
    layers = {}
    for name, p in parts.items():
        if "lora_A.weight" not in p or "lora_B.weight" not in p or p["lora_A.weight"].ndim != 2:
            raise BadInput(f"LoRA {file.path.name}: layer {name} lacks its down or up matrix: the file is damaged.")
        down, up = p["lora_A.weight"], p["lora_B.weight"]
        layers[name] = LoraLayer(down, up, p.get("lora_B.bias"), _scale(name, down.shape[0], metadata))
    return layers


def _scale(name: str, rank: int, metadata: dict | None) -> float:
    """PEFT's: a module's alpha from `alpha_pattern` (a key matches the name or its dotted tail), else `lora_alpha`;
    without diffusers' metadata alpha is the rank. A pipeline's file prefixes the keys with the component."""
    metadata = {k.removeprefix("transformer."): v for k, v in (metadata or {}).items() if k.startswith("transformer.")
                } or metadata
    if not metadata:
        return 1.0
    alpha = metadata.get("lora_alpha", rank)
    for key, value in (metadata.get("alpha_pattern") or {}).items():
        if name == key or name.endswith("." + key) or re.fullmatch(key, name):
            alpha = value
    return alpha / (math.sqrt(rank) if metadata.get("use_rslora") else rank)
