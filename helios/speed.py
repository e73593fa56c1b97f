"""The engine's fast paths on a GPU, each one switchable so the benchmark can measure what it buys."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import BadInput
from .fp8 import to_float8
from .fused_block import use_kernels
from .loading import HeliosModel
from .vae_kernels import use_vae_kernels


@dataclass(frozen=True)
class FastPaths:
    compile_blocks: bool = True
    attention_backend: str | None = "_native_cudnn"
    channels_last_vae: bool = True
    compile_vae: bool = False
    fp8: bool = False
    kernels: bool = False
    vae_kernels: bool = True
    cudnn_autotune: bool = True
    vae_latents_per_pass: int = 2
    cuda_graphs: bool = True


def apply_fast_paths(model: HeliosModel, paths: FastPaths = FastPaths()) -> None:
    """Once per model, on a GPU: optional FP8 and block kernels, cuDNN attention, regional compile of the 40
    identical blocks (one compile, reused), cuDNN autotuning, VAE convolution weights in the layout cuDNN computes
    in, the VAE decoder's Triton kernels, optional VAE compile. Each step's gain is in benchmarks/README.md."""
    if paths.fp8 and (model.device.type != "cuda" or torch.cuda.get_device_capability(model.device) < (8, 9)):
        raise BadInput("FP8 needs a GPU with FP8 tensor cores (Ada or Hopper): run without --fp8 here.")
    if model.device.type != "cuda" or model.fast_paths is not None:
        return
    model.fast_paths = paths
    if paths.fp8:
        to_float8(model.transformer)
    if paths.kernels:
        use_kernels(model.transformer.blocks)
    if paths.attention_backend:
        model.transformer.set_attention_backend(paths.attention_backend)
    if paths.compile_blocks:
        model.transformer.compile_repeated_blocks(fullgraph=True)
    if paths.cudnn_autotune:
        torch.backends.cudnn.benchmark = True
    if paths.channels_last_vae:
        for module in model.vae.modules():
            if isinstance(module, torch.nn.Conv3d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
    if paths.vae_kernels:
        use_vae_kernels(model.vae)
    if paths.compile_vae:
        model.vae.decoder = torch.compile(model.vae.decoder)
