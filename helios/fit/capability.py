"""What the GPU in hand supports and how much memory it offers: every fast path and the memory tier are chosen
from this, and each one it rules out is named with the reason."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

from ..parallel.ranks import ranks
from .host import host_memory


@dataclass(frozen=True)
class Capabilities:
    device: str
    name: str = "CPU"
    compute_capability: tuple[int, int] = (0, 0)
    free_bytes: int = 0
    total_bytes: int = 0
    triton: bool = False
    cudnn_attention: bool = False
    zero_gpu: bool = False
    host_free_bytes: int = 0
    """Host memory this process may use: what it holds now plus what the system has available, or --host-memory."""
    ranks: int = 1
    """Processes sharing one stream, a GPU each (context parallelism, see ranks.py)."""

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def fp8_matmul(self) -> bool:
        """FP8 tensor cores: Ada (8.9) and Hopper (9.0) and later."""
        return self.cuda and self.compute_capability >= (8, 9)

    @property
    def summary(self) -> str:
        if not self.cuda:
            return "CPU" + (f" ({self.ranks} ranks)" if self.ranks > 1 else "")
        major, minor = self.compute_capability
        gpus = f"{self.ranks} x " if self.ranks > 1 else ""
        host = f", {self.host_free_bytes / 2**30:.0f} GiB host memory" if self.host_free_bytes else ""
        return (
            f"{gpus}{self.name}, compute capability {major}.{minor}, {self.free_bytes / 2**30:.1f} of "
            f"{self.total_bytes / 2**30:.1f} GiB free" + (" each" if gpus else "") + host
        )

    @classmethod
    def detect(
        cls, device: torch.device, cap_gib: float | None = None, host_cap_gib: float | None = None
    ) -> "Capabilities":
        """`cap_gib` holds this process to that much GPU memory (the allocator enforces it), as on a smaller card;
        `host_cap_gib` to that much host memory (the load's ledger enforces it, weights/files.py)."""
        zero_gpu = bool(os.environ.get("SPACES_ZERO_GPU"))
        count = ranks().size
        if device.type != "cuda":
            return cls(device.type, zero_gpu=zero_gpu, ranks=count)
        host = host_memory()
        if host_cap_gib is not None:
            host = min(host, int(host_cap_gib * 2**30))
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        if cap_gib is not None:
            cap = min(int(cap_gib * 2**30), total)
            torch.cuda.set_per_process_memory_fraction(cap / total, index)
            free, total = min(free, cap - torch.cuda.memory_reserved(index)), cap
        capability = torch.cuda.get_device_capability(index)
        return cls(
            "cuda", torch.cuda.get_device_name(index), capability, free, total,
            triton=importlib.util.find_spec("triton") is not None and capability >= (8, 0),
            cudnn_attention=torch.backends.cudnn.is_available() and capability >= (8, 0),
            zero_gpu=zero_gpu, host_free_bytes=host, ranks=count,
        )
