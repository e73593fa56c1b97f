"""The engine's fast paths on a GPU, each one switchable so the benchmark can measure what it buys."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .loading import HeliosModel


@dataclass(frozen=True)
class FastPaths:
    compile_blocks: bool = True
    attention_backend: str | None = "_native_cudnn"
    channels_last_vae: bool = True
    compile_vae: bool = False


def apply_fast_paths(model: HeliosModel, paths: FastPaths = FastPaths()) -> None:
    """Regional compile of the 40 identical blocks (one compile, reused), cuDNN attention, VAE convolutions in
    the layout cuDNN computes in (saves a transpose per conv per frame), optional VAE compile."""
    if model.device.type != "cuda" or model.fast_paths is not None:
        return
    model.fast_paths = paths
    if paths.attention_backend:
        model.transformer.set_attention_backend(paths.attention_backend)
    if paths.compile_blocks:
        model.transformer.compile_repeated_blocks(fullgraph=True)
    if paths.channels_last_vae:
        for module in model.vae.modules():
            if isinstance(module, torch.nn.Conv3d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
    if paths.compile_vae:
        model.vae.decoder = torch.compile(model.vae.decoder)
