"""What a load is asked for, in one place: the weights' place and form, the speed-ups (attention among them), and how
several GPUs split the work. A `Placement` is the model's load key: two placements are two loads, and a loaded model
is never patched afterwards. `fit.tiers.resolve` turns it into what this machine runs, turning off in words what the
machine cannot do (each attention backend's needs are declared here, beside it)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .fit.capability import Capabilities


@dataclass(frozen=True)
class AttentionBackend:
    name: str
    diffusers: str | None
    """diffusers' name for it (`set_attention_backend`), or None for a processor of ours."""
    available: Callable[[Capabilities, bool], bool]
    """Whether this machine runs it, given whether the load's matmuls are FP8."""
    needs: str
    """What it needs, said when it is turned off."""


ATTENTION = {b.name: b for b in (
    AttentionBackend("cudnn", "_native_cudnn", lambda caps, fp8: caps.cudnn_attention,
                     "cuDNN's fused attention needs cuDNN and compute capability 8.0"),
    AttentionBackend("native", "native", lambda caps, fp8: True, "nothing"),
    AttentionBackend("flash", "flash", lambda caps, fp8: caps.cuda and caps.compute_capability >= (8, 0)
                     and importlib.util.find_spec("flash_attn") is not None,
                     "FlashAttention needs the flash-attn package and compute capability 8.0"),
    AttentionBackend("fp8", None, lambda caps, fp8: caps.triton and fp8,
                     "FP8 attention needs Triton and FP8 weights on FP8 tensor cores (--fp8 on Ada or Hopper)"),
)}
"""cudnn is the fastest measured on an H100 (benchmarks/README.md); fp8 (our Triton kernel, q·k in FP8) is slower
there and kept for comparisons; where the asked one cannot run, the blocks fall back to native."""


@dataclass(frozen=True)
class WeightForm:
    memory: str = "auto"
    """A memory tier by name, or "auto": the fastest tier whose weights this GPU and host hold (fit/tiers.py)."""
    fp8: bool = False
    """FP8 transformer weights on top of whatever the memory needs: half the bytes, FP8 matmuls on Ada and Hopper."""
    never_fp8: bool = False
    """No FP8 weights, whatever the memory needs: a comparison's bf16 side, whose form is what is compared (a tier
    that offloads or streams is chosen instead, or the load refused)."""
    fp8_linears: str = "torchao"
    """Whose FP8 linear layers: "torchao" (the library's, faster once compiled) or "ours" (weights/fp8.py)."""


@dataclass(frozen=True)
class Speedups:
    """Each computes what the plain path computes (tests compare frames)."""

    compile_blocks: bool = True
    """torch.compile each transformer block (one compiled graph serves all 40)."""
    attention: str = "cudnn"
    """The blocks' attention, one of `ATTENTION`."""
    kernels: bool = False
    """Our Triton kernels in the blocks (faster/fused_block.py): 1.41x on an eager block, nothing on a compiled one
    (Inductor fuses the same ops; H100, benchmarks/README.md), so off by default."""
    channels_last_vae: bool = True
    """The VAE in channels-last 3D layout, which cuDNN's convolutions read fastest."""
    vae_kernels: bool = True
    """Our Triton kernels for the VAE's norms and narrow convolutions (faster/vae_kernels.py)."""
    compile_vae: bool = False
    """torch.compile the VAE's decoder: ~6% on the decode where our kernels bought 1.6x, so off unless asked."""
    cudnn_autotune: bool = True
    """cuDNN tries its convolution algorithms once per shape and keeps the fastest."""
    aot: str = "jit"
    """Ahead-of-time compiled blocks: the cache's folder made for this GPU, torch and weight form if there is one,
    else "jit" compiles them just in time and "auto" runs them as they are while their package is built beside the
    first run (helios/aot_beside.py; the CLI's and the app's default, a first start's); "off", or a folder made by
    `python -m helios compile` (faster/aot.py). Benchmarks keep "jit": they measure the compiled steady state."""


@dataclass(frozen=True)
class Placement:
    weights: WeightForm = WeightForm()
    faster: Speedups = Speedups()
    parallel: str = "auto"
    """With several ranks: how attention is split, "ulysses" (by heads), "ring", or "auto" (Ulysses when the heads
    divide evenly among the ranks)."""
