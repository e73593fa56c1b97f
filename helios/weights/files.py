"""Weights go from a checkpoint's safetensors files straight to where they will live, one module at a time: GPU
memory, or plain host memory on a CPU. Never a whole model in host memory on the way.

Files are read with plain reads into two small pinned buffers, each copied to the GPU while the other fills: no
memory map, whose touched pages would count as the process's own memory until the load ends. A tensor stored in
another dtype than the model computes in is converted on its device. Modules are built empty first (`empty`), so
their parameters cost nothing until filled.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelUnavailable
from ..stored import Stored, stored_tensors
from .streaming import plain_tensors

CHUNK = 64 * 2**20


def empty(build):
    """A module built with every parameter on the meta device (no memory); buffers are made as usual."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return build()


class HostLedger:
    """The host memory a load pins, counted as it is pinned: past its budget (the memory available, or
    --host-memory) the load stops in words instead of the system killing the process later."""

    def __init__(self, budget: int | None, base: int):
        self.budget, self.base, self.pinned = budget, base, 0
        self._lock = threading.Lock()

    def charge(self, nbytes: int) -> None:
        with self._lock:
            self.pinned += nbytes
            if self.budget is not None and self.base + self.pinned > self.budget:
                raise ModelUnavailable(
                    f"Loading would hold more than the {self.budget / 2**30:.1f} GiB of host memory allowed: choose a "
                    "memory tier that keeps more on the GPU, or allow more host memory (--host-memory)."
                )


class PinnedSlabs:
    """Pinned host memory cut to size from 1 GiB slabs: PyTorch's pinned allocator rounds every allocation up to a
    power of two, so a 70 MB FP8 weight pinned alone held 128 MB (an 8 GiB card's load peaked at 30.5 GiB of host
    memory on the H200). With 256 MiB slabs, which hold three such weights and leave the rest, 12 and 8 GiB cards were
    still refused by the ledger at 24 GiB."""

    SLAB = 2**30
    ALIGN = 256

    def __init__(self, ledger: HostLedger):
        self.ledger = ledger
        self.slab, self.used = torch.empty(0, dtype=torch.uint8), 0
        self._lock = threading.Lock()

    def take(self, like: torch.Tensor) -> torch.Tensor:
        nbytes = like.numel() * like.element_size()
        with self._lock:
            if self.used + nbytes > self.slab.numel():
                size = max(self.SLAB, 1 << (nbytes - 1).bit_length())
                self.ledger.charge(size)
                self.slab, self.used = torch.empty(size, dtype=torch.uint8, pin_memory=True), 0
            start = self.used
            self.used += -(-nbytes // self.ALIGN) * self.ALIGN
        return self.slab[start:start + nbytes].view(like.dtype).view(like.shape)


class Weights:
    """Where a component's weights come from. `fill(module, prefix, device, dtype_of)` gives each of the module's
    tensors its value on `device`, in the dtype `dtype_of(name, stored dtype)` names; `pin` moves them on to pinned
    host memory, charged to the ledger."""

    def __init__(self, ledger: HostLedger, slabs: PinnedSlabs | None = None):
        self.ledger = ledger
        self.slabs = slabs or PinnedSlabs(ledger)

    def held_in_host(self, module: nn.Module, extra: int = 0) -> None:
        """Charges a module whose tensors were filled in plain host memory, and `extra` bytes it holds outside them."""
        self.ledger.charge(sum(t.numel() * t.element_size() for t in plain_tensors(module)) + extra)

    def pin(self, module: nn.Module, device: torch.device) -> None:
        """Off the GPU into pinned host memory (plain host memory on a CPU)."""
        for t in plain_tensors(module):
            if device.type != "cuda":
                self.ledger.charge(t.numel() * t.element_size())
            elif t.numel():
                host = self.slabs.take(t)
                host.copy_(t.data)
                t.data = host


class InMemory(Weights):
    """Weights already in the modules (the benchmark's full-size random ones): filling moves each tensor to the
    device and dtype a file's would take."""

    def fill(self, module: nn.Module, prefix: str, device: torch.device, dtype_of) -> None:
        for name, tensor in (*module.named_parameters(), *module.named_buffers()):
            tensor.data = tensor.data.to(device, dtype_of(prefix + name, tensor.dtype))
        module.requires_grad_(False)


class FromLoaded(Weights):
    """Another loaded model's module of the same checkpoint: each tensor copied where this one's goes (GPU to GPU when
    both are there), so a second weight form of a loaded checkpoint reads nothing from disk."""

    def __init__(self, loaded: nn.Module, ledger: HostLedger, slabs: PinnedSlabs | None = None):
        super().__init__(ledger, slabs)
        self.tensors = dict(loaded.named_parameters(remove_duplicate=False))
        self.tensors.update(loaded.named_buffers(remove_duplicate=False))

    def fill(self, module: nn.Module, prefix: str, device: torch.device, dtype_of) -> None:
        values = {}
        for name, tensor in (*module.named_parameters(), *module.named_buffers()):
            source = self.tensors.get(prefix + name)
            if source is None and tensor.is_meta:
                raise ModelUnavailable(
                    f"The loaded model has no {prefix + name} to copy: load this form from its files."
                )
            source = tensor if source is None else source
            values[name] = source.to(device, dtype_of(prefix + name, source.dtype), copy=True)
        set_tensors(module, values)


class WeightFiles(Weights):
    """One component's safetensors files, read with one thread."""

    def __init__(self, folder: Path, ledger: HostLedger, slabs: PinnedSlabs | None = None):
        super().__init__(ledger, slabs)
        self.folder = folder
        self.stored = stored_tensors(folder)
        self._staging: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []
        self._turn = 0

    def fill(self, module: nn.Module, prefix: str, device: torch.device, dtype_of) -> None:
        values = {}
        for name, tensor in (*module.named_parameters(), *module.named_buffers()):
            key = prefix + name
            if key in self.stored:
                stored = self.stored[key]
                if stored.shape != tuple(tensor.shape):
                    raise ModelUnavailable(
                        f"{self.folder} stores {key} as {list(stored.shape)} where its config makes "
                        f"{list(tensor.shape)}: the checkpoint does not match its config.json; download it again."
                    )
                values[name] = self._read(stored, device, dtype_of(key, stored.dtype))
            elif tensor.is_meta:
                raise ModelUnavailable(f"{self.folder} lacks {key}: the checkpoint is incomplete; download it again.")
            else:
                values[name] = tensor.to(device)  # computed when the module was built (rotary tables)
        set_tensors(module, values)

    def _read(self, stored: Stored, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if device.type != "cuda":
            out = torch.empty(stored.shape, dtype=stored.dtype)
            _read_into(stored.file, stored.offset, _bytes(out))
            return out.to(dtype)
        out = torch.empty(stored.shape, dtype=stored.dtype, device=device)
        target = _bytes(out)
        for start in range(0, stored.nbytes, CHUNK):
            size = min(CHUNK, stored.nbytes - start)
            buffer = self._buffer(device)
            _read_into(stored.file, stored.offset + start, buffer[:size])
            target[start:start + size].copy_(buffer[:size], non_blocking=True)
            self._staging[self._turn] = (buffer, torch.cuda.current_stream(device).record_event())
            self._turn = 1 - self._turn
        return out.to(dtype)

    def _buffer(self, device: torch.device) -> torch.Tensor:
        """The next staging buffer, once the GPU has finished copying out of it."""
        if not self._staging:
            self.ledger.charge(2 * CHUNK)
            self._staging = [(torch.empty(CHUNK, dtype=torch.uint8, pin_memory=True), None) for _ in range(2)]
        buffer, copied = self._staging[self._turn]
        if copied is not None:
            copied.synchronize()
        return buffer


def set_tensors(module: nn.Module, values: dict[str, torch.Tensor]) -> None:
    """One by one: load_state_dict skips non-persistent buffers."""
    for name, value in values.items():
        owner, _, leaf = name.rpartition(".")
        sub = module.get_submodule(owner)
        if leaf in sub._parameters:
            sub._parameters[leaf] = nn.Parameter(value, requires_grad=False)
        else:
            sub._buffers[leaf] = value


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1).view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8, device=t.device)


def _read_into(file: Path, offset: int, target: torch.Tensor) -> None:
    view = memoryview(target.numpy()).cast("B")
    with open(file, "rb", buffering=0) as f:
        f.seek(offset)
        done = 0
        while done < len(view):
            n = f.readinto(view[done:])
            if not n:
                raise ModelUnavailable(f"{file} ends early: the checkpoint is damaged; download it again.")
            done += n


def on_side_stream(work, device: torch.device):
    """`work` on a CUDA stream of its own, finished before it returns, beside what other threads queue."""
    if device.type != "cuda":
        return work()
    if device.index is not None:
        torch.cuda.set_device(device)
    with torch.cuda.stream(torch.cuda.Stream(device)):
        result = work()
        torch.cuda.current_stream(device).synchronize()
    return result


class Loading(threading.Thread):
    """Runs one component's load beside another's (the text encoder beside the transformer), on a CUDA stream of its
    own, and hands back its result or its exception."""

    def __init__(self, work, device: torch.device):
        super().__init__(daemon=True)
        self.work, self.device = work, device
        self.result, self.error = None, None
        self.start()

    def run(self) -> None:
        try:
            self.result = on_side_stream(self.work, self.device)
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc

    def wait(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.result
