"""The transformer blocks' FP8 form saved once, so that an FP8 start reads about half the bytes and quantizes nothing.

An FP8 start without it reads the checkpoint's 28 GB of bf16 block weights and quantizes them (load 40.5 s of a 47.1 s
first frame on an H100, issue 45). `python -m helios compile --fp8` writes each block's tensors after the conversion -
torchao's FP8 weights as their parts (values and scales), everything else as it is - one safetensors file per block,
into `fp8/<key>` beside the `aot/` folders. A later load makes each block's FP8 layout by the same conversion from
zeros on its device and copies the saved parts into it. A form is keyed by what could change its bytes: the
checkpoint's values, torch, torchao, the linears' library and matmul; any difference, or a damaged form, and the load
quantizes as before, saying why."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from ..cache import fp8_form_cache
from ..errors import ModelUnavailable
from ..fit.tiers import Fit
from .files import HostLedger, PinnedSlabs, WeightFiles, set_tensors

META = "helios-fp8.json"
SAMPLES = 16
SAMPLE_BYTES = 64 * 2**10


@dataclass(frozen=True)
class Fp8FormKey:
    checkpoint: str
    """`checkpoint_fingerprint` of the transformer folder the form was quantized from."""
    torch: str
    torchao: str
    weights: str
    """The FP8 linears' library and matmul, as the AoT key names them ("fp8-torchao-matmul")."""
    dtype: str
    """What the blocks' other tensors compute in."""

    @property
    def name(self) -> str:
        return "fp8-" + hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: Fp8FormKey) -> list[str]:
        return [
            f"{f.name} {getattr(other, f.name)} (this run: {getattr(self, f.name)})"
            for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)
        ]


def checkpoint_fingerprint(transformer_folder: Path) -> str:
    """The config, each weight file's header and 16 samples of 64 KiB spread over its values, hashed: a fine-tune of
    the same architecture keeps every header (the recipe's `model_hash` would match) but not its values, and hashing
    every byte would read the 28 GB the saved form exists to skip."""
    digest = hashlib.sha256((transformer_folder / "config.json").read_bytes())
    for file in sorted(transformer_folder.glob("*.safetensors")):
        size = file.stat().st_size
        with open(file, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            digest.update(f.read(length))
            start = 8 + length
            span = max(size - start - SAMPLE_BYTES, 0)
            for i in range(SAMPLES):
                f.seek(start + span * i // (SAMPLES - 1))
                digest.update(f.read(SAMPLE_BYTES))
    return digest.hexdigest()[:32]


def form_key(checkpoint: Path, fit: Fit, dtype: torch.dtype) -> Fp8FormKey:
    """The key of the form `fit`'s FP8 blocks take, quantized from `checkpoint`."""
    matmul = "matmul" if fit.fp8_matmul else "weight-only"
    try:
        torchao = importlib.metadata.version("torchao")
    except importlib.metadata.PackageNotFoundError:
        torchao = "none"
    return Fp8FormKey(
        checkpoint=checkpoint_fingerprint(checkpoint / "transformer"),
        torch=torch.__version__.split("+")[0],
        torchao=torchao,
        weights=f"fp8-{fit.placement.weights.fp8_linears}-{matmul}",
        dtype=str(dtype).removeprefix("torch."),
    )


def with_saved_form(fit: Fit, checkpoint: Path, dtype: torch.dtype, blocks: int) -> Fit:
    """`fit`, its FP8 blocks loaded from their saved form where one was made for exactly them."""
    if not fit.tier.fp8_weights:
        return fit
    return fit.with_fp8_form(*choose(form_key(checkpoint, fit, dtype), blocks, fp8_form_cache()))


def choose(key: Fp8FormKey, blocks: int, cache: Path) -> tuple[Path | None, str]:
    """The saved form to load the blocks from (None: quantize at load) and the words for the banner."""
    folder = cache / key.name
    if not folder.is_dir():
        return None, "FP8 weights quantized at load: python -m helios compile --fp8 saves them once"
    try:
        meta = json.loads((folder / META).read_text())
        made_for = Fp8FormKey(**meta["key"])
        complete = all((folder / block_file(i)).is_file() for i in range(blocks)) and meta["blocks"] == blocks
    except (OSError, ValueError, KeyError, TypeError):
        made_for, complete = None, False
    if made_for != key or not complete:
        why = f"made for {'; '.join(key.differences(made_for))}" if made_for not in (None, key) else "damaged"
        return None, f"FP8 weights quantized at load: the saved FP8 form at {folder} is {why}"
    return folder, f"FP8 weights from the saved form at {folder}"


def block_file(index: int) -> str:
    return f"block-{index:03d}.safetensors"


def flat_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's tensors by name, a tensor subclass (torchao's Float8Tensor) as its parts, `NAME.PART`."""
    tensors = {}
    for name, t in (*module.named_parameters(), *module.named_buffers()):
        if is_traceable_wrapper_subclass(t):
            for part in t.__tensor_flatten__()[0]:
                tensors[f"{name}.{part}"] = getattr(t, part)
        else:
            tensors[name] = t
    return tensors


def save(blocks: nn.ModuleList, key: Fp8FormKey, checkpoint: Path, folder: Path) -> float:
    """Each block's FP8 tensors to its own file, one block in host memory at a time; returns the seconds it took. A
    failed save leaves no folder a load would take. The meta names the checkpoint's folder, by which a start's
    read-ahead finds the form before the load has keyed it (helios/read_ahead.py)."""
    from safetensors.torch import save_file

    start = time.perf_counter()
    scratch = folder.parent / f".{folder.name}.saving"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        for i, block in enumerate(blocks):
            inner = getattr(block, "block", block)  # a streamed block computes from its inner block
            host = {f"blocks.{i}.{name}": t.detach().to("cpu").contiguous() for name, t in flat_tensors(inner).items()}
            save_file(host, str(scratch / block_file(i)))
        seconds = time.perf_counter() - start
        meta = dict(key=dataclasses.asdict(key), blocks=len(blocks), checkpoint_folder=str(checkpoint.resolve()),
                    save_s=round(seconds, 1))
        (scratch / META).write_text(json.dumps(meta, indent=1))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    return seconds


class SavedFp8(WeightFiles):
    """A saved form's files: `fill` leaves a block in FP8 (`convert`, the load's own conversion) with the saved
    values."""

    def __init__(self, folder: Path, convert: Callable[[nn.Module], object], ledger: HostLedger,
                 slabs: PinnedSlabs | None = None):
        super().__init__(folder, ledger, slabs)
        self.convert = convert

    def fill(self, module: nn.Module, prefix: str, device: torch.device, dtype_of) -> None:
        set_tensors(module, {
            name: torch.zeros(t.shape, dtype=dtype_of(prefix + name, t.dtype), device=device)
            for name, t in (*module.named_parameters(), *module.named_buffers())
        })
        self.convert(module)
        for name, target in flat_tensors(module).items():
            stored = self.stored.get(prefix + name)
            if stored is None or stored.shape != tuple(target.shape) or stored.dtype != target.dtype:
                raise ModelUnavailable(
                    f"The saved FP8 form at {self.folder} does not match this model's {prefix + name}: delete "
                    "the folder (python -m helios compile --fp8 makes it again)."
                )
            target.copy_(self._read(stored, device, stored.dtype))

