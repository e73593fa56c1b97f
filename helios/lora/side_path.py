"""LoRA adapters as a side path beside the transformer's linear layers: y = W x + up (s * (down x)), s per rank row
being its adapter's strength (one tensor every layer reads) times PEFT's scale.

A strength change is a copy into that tensor: never a recompile, never a re-capture of a CUDA graph. The base weight
is untouched, so every weight form takes adapters, and strength 0 gives exactly the frames without them
(tests/test_lora.py; against diffusers' own LoRA layers: benchmarks/README.md, Decisions). The adapter weights are
plain attributes, not parameters: streaming leaves them resident (rank 64 on every linear of the 14B model: 307M
parameters, 0.61 GB in bf16, by count).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInput
from ..fit.host import available_memory
from .file import LoraFile, LoraLayer, read_layers

Layout = tuple[tuple[tuple[str, int, bool], ...], ...]
"""Per adapter, in order: (module, rank, has a bias) for each layer it targets."""


_SIDED: dict[type, type] = {}
"""Each linear class's subclass with the side path: a layer's class is swapped in place, so its module names, its
state dict and the guards torch.compile puts on it (on its class, not its identity: one compiled block serves all 40)
stay as they were; the adapter tensors are plain attributes."""


def _sided(cls: type) -> type:
    if cls not in _SIDED:
        base_forward = cls.forward

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = base_forward(self, x)
            rows = (self.lora_strengths[self.lora_owner] * self.lora_scale).to(self.lora_down.dtype)
            y = y + F.linear(F.linear(x.to(self.lora_down.dtype), self.lora_down) * rows, self.lora_up).to(y.dtype)
            if self.lora_bias is not None:
                strengths = (self.lora_strengths[self.lora_bias_owner] * self.lora_bias_scale).to(self.lora_bias.dtype)
                y = y + (strengths @ self.lora_bias).to(y.dtype)
            return y

        _SIDED[cls] = type(f"Lora{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__})
    return _SIDED[cls]


_ATTRIBUTES = ("lora_strengths", "lora_down", "lora_up", "lora_owner", "lora_scale", "lora_bias", "lora_bias_owner",
               "lora_bias_scale")


def add_side(layer: nn.Module, strengths: torch.Tensor, parts: list[tuple[int, LoraLayer]], device, dtype) -> None:
    """The adapters that target this linear layer (of any form: nn.Linear, FP8), run after it on the same input."""
    biased = [(a, p) for a, p in parts if p.bias is not None]
    values = dict(
        lora_strengths=strengths,
        lora_down=torch.cat([p.down for _, p in parts]).to(device, dtype),
        lora_up=torch.cat([p.up for _, p in parts], dim=1).to(device, dtype),
        lora_owner=torch.tensor([a for a, p in parts for _ in range(p.rank)], device=device),
        lora_scale=torch.tensor([p.scale for _, p in parts for _ in range(p.rank)], device=device),
        lora_bias=torch.stack([p.bias for _, p in biased]).to(device, dtype) if biased else None,
        lora_bias_owner=torch.tensor([a for a, _ in biased], device=device),
        lora_bias_scale=torch.tensor([p.scale for _, p in biased], device=device),
    )
    layer.__dict__.update(values)
    layer.__class__ = _sided(type(layer))


def copy_side(layer: nn.Module, parts: list[tuple[int, LoraLayer]]) -> None:
    """Another adapter of the same ranks and targets into the same tensors: what was compiled or captured holds."""
    layer.lora_down.copy_(torch.cat([p.down for _, p in parts]))
    layer.lora_up.copy_(torch.cat([p.up for _, p in parts], dim=1))
    layer.lora_scale.copy_(torch.tensor([p.scale for _, p in parts for _ in range(p.rank)]))
    if layer.lora_bias is not None:
        layer.lora_bias.copy_(torch.stack([p.bias for _, p in parts if p.bias is not None]))
        layer.lora_bias_scale.copy_(torch.tensor([p.scale for _, p in parts if p.bias is not None]))


def remove_side(layer: nn.Module) -> None:
    layer.__class__ = layer.__class__.__bases__[0]
    for name in _ATTRIBUTES:
        layer.__dict__.pop(name, None)


class LoraSlots:
    """The adapters installed in one transformer, and each one's strength. `use` makes a request's adapters the
    installed ones (`installs` counts the times the layers changed: CUDA graphs of the old ones are stale); `set`
    changes strengths in place."""

    def __init__(self, transformer: nn.Module, device: torch.device, dtype: torch.dtype):
        self.transformer, self.device, self.dtype = transformer, device, dtype
        self.files: tuple[LoraFile, ...] = ()
        self.layout: Layout = ()
        self.layers: dict[str, nn.Module] = {}
        self.strengths = torch.zeros(0, device=device)
        self.installs = 0
        self.held_bytes = 0
        """What the installed adapters' layers hold where the model computes."""
        self._set: list[float] = []
        """The strengths last copied to `strengths`."""
        self._read: dict[str, dict[str, LoraLayer]] = {}

    def use(self, files: tuple[LoraFile, ...]) -> None:
        if [f.sha256 for f in files] == [f.sha256 for f in self.files]:
            self.files = files  # their default strengths may differ
            return
        read = [self._layers_of(f) for f in files]
        layout = tuple(tuple(sorted((name, layer.rank, layer.bias is not None) for name, layer in r.items()))
                       for r in read)
        by_module = self._by_module(read)
        if layout == self.layout and files:
            for name, parts in by_module.items():
                copy_side(self.layers[name], parts)
            self.files = files
            return
        self._remove()
        self.strengths = torch.zeros(len(files), device=self.device)
        self._set = [0.0] * len(files)
        for name, parts in by_module.items():
            self.layers[name] = _submodule(self.transformer, name)
            add_side(self.layers[name], self.strengths, parts, self.device, self.dtype)
        self.files, self.layout = files, layout
        self.held_bytes = self._bytes(read)
        self.installs += 1

    def set(self, strengths: dict[str, float]) -> None:
        """Each installed adapter's strength (its file's where `strengths` names it not). Copied only when they
        change, from pinned memory on a GPU: a copy from pageable memory would make the generation loop wait for the
        GPU."""
        values = [strengths.get(f.name, f.strength) for f in self.files]
        if values == self._set:
            return
        cuda = self.device.type == "cuda"
        self.strengths.copy_(torch.tensor(values, dtype=self.strengths.dtype, pin_memory=cuda), non_blocking=cuda)
        self._set = values

    def check(self, files: tuple[LoraFile, ...]) -> None:
        """BadInput, in words, if a file is no LoRA, has a layer this model lacks, or all of them need more memory
        than is left where the model computes (the installed ones' given back); read once, for `use`."""
        if not files:
            return
        need = self._bytes([self._layers_of(file) for file in files])
        if self.device.type == "cuda":
            free, where = torch.cuda.mem_get_info(self.device)[0], "GPU"
            advice = "a memory tier that keeps less on the GPU (--memory)"
        else:
            free, where, advice = available_memory(), "host", "close what else holds memory here"
        if free and need > free + self.held_bytes:
            raise BadInput(
                f"The LoRA adapters need {need / 2**30:.2f} GiB of {where} memory and "
                f"{(free + self.held_bytes) / 2**30:.2f} GiB is left: use fewer or smaller adapters, or {advice}."
            )

    def _bytes(self, read: list[dict[str, LoraLayer]]) -> int:
        return sum((p.down.numel() + p.up.numel()) * self.dtype.itemsize for r in read for p in r.values())

    def _layers_of(self, file: LoraFile) -> dict[str, LoraLayer]:
        if file.sha256 not in self._read:
            layers = read_layers(file)
            matched = {name: layer for name, layer in layers.items() if self._fits(name, layer, file)}
            unmatched = [name for name in layers if name not in matched]
            if unmatched:
                raise BadInput(
                    f"LoRA {file.path.name}: {len(unmatched)} of its {len(layers)} layers match no linear layer of "
                    f"this model ({len(matched)} matched; {unmatched[0]} is one that does not): it was made for "
                    "another model."
                )
            self._read = {**dict(list(self._read.items())[-7:]), file.sha256: matched}
        return self._read[file.sha256]

    def _fits(self, name: str, layer: LoraLayer, file: LoraFile) -> bool:
        """Whether the layer targets a linear layer here; refused if its shape is wrong."""
        weight = getattr(_submodule(self.transformer, name), "weight", None)
        if weight is None or weight.ndim != 2:
            return False
        if tuple(weight.shape) != (layer.up.shape[0], layer.down.shape[1]):
            raise BadInput(
                f"LoRA {file.path.name}: layer {name} is {layer.up.shape[0]}x{layer.down.shape[1]} in the adapter but "
                f"{weight.shape[0]}x{weight.shape[1]} in this model: it was made for another model."
            )
        return True

    def _by_module(self, read: list[dict[str, LoraLayer]]) -> dict[str, list[tuple[int, LoraLayer]]]:
        out: dict[str, list[tuple[int, LoraLayer]]] = {}
        for adapter, layers in enumerate(read):
            for name, layer in layers.items():
                out.setdefault(name, []).append((adapter, layer))
        return out

    def _remove(self) -> None:
        for layer in self.layers.values():
            remove_side(layer)
        self.layers = {}


def _submodule(root: nn.Module, name: str) -> nn.Module | None:
    """The module a LoRA key names, through the wrappers our tiers put around a block (a streamed block's `block`)."""
    module = root
    for part in name.split("."):
        inner = module._modules.get("block")
        if part not in module._modules and inner is not None:
            module = inner
        module = module._modules.get(part)
        if module is None:
            return None
    return module
