"""The models this process keeps loaded, by source and load options: what fits stays warm, and a load that the others
would make smaller (a lower tier, fewer resident blocks) first releases the least recently used. Another weight form
of a loaded checkpoint is made from it (`loading.load_checkpoint(donor=...)`), so it reads nothing from disk."""

from __future__ import annotations

import dataclasses
import gc
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from . import DEFAULT_MODEL
from .fit.capability import Capabilities
from .fit.size import model_size
from .fit.tiers import crowded, gpu_bytes, resolve
from .loading import HeliosModel, LoadOptions, check_hardware, load_checkpoint, local_folder, resolve_folder

_models: dict[tuple[str, LoadOptions], HeliosModel] = {}
_lock = threading.Lock()
_last_load: dict[bool, tuple[int, float]] = {}
"""The checkpoint bytes and seconds of the last load from disk (False) and from a loaded form (True): the rates
`plan_load` estimates with."""


def release(model: HeliosModel) -> None:
    """The model leaves the cache; its memory goes back once nothing else holds it (a run, an engine)."""
    with _lock:
        _release(model)


def _release(model: HeliosModel) -> None:
    for key in [k for k, held in _models.items() if held is model]:
        del _models[key]
    gc.collect()
    if model.device.type == "cuda":
        torch.cuda.empty_cache()


def _crowded(source: str, options: LoadOptions) -> bool:
    """Whether the models already loaded would make this one load smaller than it would on the GPU alone."""
    device = options.resolve()[0]
    if device.type != "cuda" or not _models:
        return False
    here = Capabilities.detect(device, options.gpu_memory_gib, options.host_memory_gib)
    alone = dataclasses.replace(
        here, free_bytes=min(here.free_bytes + torch.cuda.memory_reserved(device), here.total_bytes)
    )
    return crowded(options.placement, model_size(resolve_folder(source)), here, alone)


def _evictable(keep: tuple[HeliosModel, ...], donor: HeliosModel | None) -> list[HeliosModel]:
    """Loaded models a load may release, least recently used first; the form it would be made from goes last."""
    others = [m for m in _models.values() if all(m is not k for k in keep)]
    return sorted(others, key=lambda m: m is donor)


def load_model(source: str = DEFAULT_MODEL, options: LoadOptions = LoadOptions(),
               keep: tuple[HeliosModel, ...] = ()) -> HeliosModel:
    """The cached model for (source, options); the first call loads it. Another placement is another model. Models
    stay loaded while they fit: before a load that the others would make smaller (a lower tier, fewer resident
    blocks), the least recently used are released, never those in `keep`, and the loaded form of the same checkpoint
    it would be copied from only if releasing the others was not enough."""
    with _lock:
        key = (source, options)
        if key in _models:
            _models[key] = _models.pop(key)  # now the most recently used
            return _models[key]
        folder = resolve_folder(source)
        device, dtype, _ = options.resolve()
        for victim in _evictable(keep, _donor(folder, device, dtype)):
            if not _crowded(source, options):
                break
            _release(victim)
        donor = _donor(folder, device, dtype)  # none if it had to go
        model = _models[key] = load_checkpoint(source, options, donor=donor)
        _last_load[donor is not None] = (model_size(folder).total_bytes, model.load_s)
        return model


@dataclass(frozen=True)
class LoadPlan:
    """What `load_model` would do, said before it does it: the page shows it before a comparison starts."""

    warm: bool = False
    copied_from: str | None = None
    """The label of the loaded form of the same checkpoint its weights would be copied from."""
    read_bytes: int = 0
    download: bool = False
    releases: tuple[str, ...] = ()
    tier: str | None = None
    seconds: float | None = None
    """At the rate of this process's last load of the same kind; None before there was one."""

    def describe(self) -> str:
        if self.warm:
            return "loaded and warm: no load"
        if self.download:
            return "not on this machine: downloaded from the Hugging Face Hub, then loaded"
        words = (f"copied from the loaded {self.copied_from} (no disk read)" if self.copied_from
                 else f"reads {_amount(self.read_bytes)} from disk")
        words += f" into memory tier {self.tier}" if self.tier else ""
        if self.seconds is not None:
            words += f", ~{self.seconds:.0f} s at this process's last such load"
        if self.releases:
            words += f"; releases {', '.join(self.releases)} first"
        return words + "; then one short warm-up run"


def _amount(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


def plan_load(source: str, options: LoadOptions = LoadOptions(), keep: tuple[HeliosModel, ...] = ()) -> LoadPlan:
    """Raises ModelUnavailable, in words, where the model cannot load here even with every model not kept released."""
    with _lock:
        if (source, options) in _models:
            return LoadPlan(warm=True)
        folder = local_folder(source)
        if folder is None:
            return LoadPlan(download=True)
        device, dtype, _ = options.resolve()
        check_hardware(folder, device)
        size = model_size(folder)
        donor = _donor(folder, device, dtype)
        evictable = _evictable(keep, donor)
        here = Capabilities.detect(device, options.gpu_memory_gib, options.host_memory_gib)
        releases = []
        if here.cuda:
            free = here.free_bytes + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
            after = [free + sum(_gpu_bytes(m) for m in evictable[:n]) for n in range(len(evictable) + 1)]
            with_all = dataclasses.replace(here, free_bytes=min(after[-1], here.total_bytes))
            best = resolve(options.placement, with_all, size)
            for n, model in enumerate(evictable):
                if not crowded(options.placement, size, dataclasses.replace(here, free_bytes=after[n]), with_all):
                    break
                releases.append(model)
            tier = best.tier.name
        else:
            tier = resolve(options.placement, here, size).tier.name
        donor = donor if all(m is not donor for m in releases) else None
        measured = _last_load.get(donor is not None)
        seconds = None if measured is None else size.total_bytes * measured[1] / max(measured[0], 1)
        return LoadPlan(copied_from=donor.label if donor else None, read_bytes=0 if donor else size.total_bytes,
                        releases=tuple(m.label for m in releases), tier=tier, seconds=seconds)


def is_loaded(model: HeliosModel) -> bool:
    with _lock:
        return any(m is model for m in _models.values())


def _gpu_bytes(model: HeliosModel) -> int:
    if model.device.type != "cuda":
        return 0
    return gpu_bytes(model.fit.tier, model_size(model.folder), model.fit.resident_blocks)


def _donor(folder: Path, device: torch.device, dtype: torch.dtype) -> HeliosModel | None:
    """A loaded model of the same checkpoint with every transformer block in `dtype` on `device`: what another weight
    form of it is made from, with no read from disk."""
    return next((m for m in _models.values() if m.folder == folder and m.device == device and m.dtype == dtype
                 and not m.fit.tier.fp8_weights and m.block_stream is None), None)
