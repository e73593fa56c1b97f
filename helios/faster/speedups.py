"""The speed-ups a load switches on, as asked; each computes what the plain path computes (tests compare frames), and
`fit.tiers.resolve` turns off, in words, what this machine cannot run."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Speedups:
    compile_blocks: bool = True
    """torch.compile each transformer block (one compiled graph serves all 40)."""
    attention_backend: str | None = "_native_cudnn"
    """diffusers' attention backend for the blocks: cuDNN's fused attention is the fastest on Ampere and later."""
    kernels: bool = False
    """Our Triton kernels in the blocks (faster/fused_block.py): 1.41x on an eager block, nothing on a compiled one
    (Inductor fuses the same ops; H100, benchmarks/README.md), so off by default."""
    fp8_attention: bool = False
    """With FP8 weights on FP8 tensor cores, self-attention's q·k in FP8 too (faster/kernels/fp8_attention.py)."""
    channels_last_vae: bool = True
    """The VAE in channels-last 3D layout, which cuDNN's convolutions read fastest."""
    vae_kernels: bool = True
    """Our Triton kernels for the VAE's norms and narrow convolutions (faster/vae_kernels.py)."""
    compile_vae: bool = False
    """torch.compile the VAE's decoder: ~6% on the decode where our kernels bought 1.6x, so off unless asked."""
    cudnn_autotune: bool = True
    """cuDNN tries its convolution algorithms once per shape and keeps the fastest."""
    aot: str = "auto"
    """Ahead-of-time compiled blocks: "auto" (the cache's folder made for this GPU, torch and weight form, if any),
    "off", or a folder made by `python -m helios compile` (faster/aot.py)."""
