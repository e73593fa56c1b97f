"""The Wan VAE's encoder and decoder on our Triton kernels: each channel RMS norm + SiLU pair becomes one pass
(helios/faster/kernels/rms_norm_silu.py), and the narrow causal convolutions, where cuDNN is slowest, an implicit GEMM
(helios/faster/kernels/causal_conv3d.py). Both write channels-last, which the next norm and convolution read as they
are. Nearest upsampling stays in the tensor's own dtype: it only copies values, so widening to fp32 first, as diffusers
does, changes nothing but the memory traffic. `apply_vae_kernels` is the switch."""

from __future__ import annotations

import types

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import (
    AutoencoderKLWan,
    WanCausalConv3d,
    WanResidualBlock,
    WanRMS_norm,
    WanUpsample,
)

from helios.faster.kernels.causal_conv3d import causal_conv3d, gemm_weight
from helios.faster.kernels.rms_norm_silu import rms_norm_silu

TRITON_CONV_MAX_CHANNELS = 128
"""Measured on the H100 (benchmarks/results/h100-kernels.log): the kernel beats cuDNN at 96 input channels and
loses at 192, so wider convolutions stay on cuDNN."""


def apply_vae_kernels(vae: AutoencoderKLWan) -> None:
    for coder in (vae.encoder, vae.decoder):
        blocks = [block for block in coder.modules() if isinstance(block, WanResidualBlock)]
        pairs = [(b, b.norm1) for b in blocks] + [(b, b.norm2) for b in blocks] + [(coder, coder.norm_out)]
        for owner, norm in pairs:
            if isinstance(norm.bias, torch.nn.Parameter):
                continue  # the fused kernel has no bias term; Wan 2.1's norms have none
            owner.nonlinearity = torch.nn.Identity()
            norm.forward = types.MethodType(_norm_silu_forward, norm)
        for conv in coder.modules():
            if isinstance(conv, WanCausalConv3d) and _fits(conv):
                conv.register_buffer("gemm_weight", gemm_weight(conv.weight.data), persistent=False)  # moves with .to()
                conv.forward = types.MethodType(_conv_forward, conv)
    for upsample in vae.decoder.modules():
        if isinstance(upsample, WanUpsample) and upsample.mode.startswith("nearest"):
            upsample.forward = types.MethodType(torch.nn.Upsample.forward, upsample)


def _norm_silu_forward(self: WanRMS_norm, x: torch.Tensor) -> torch.Tensor:
    return rms_norm_silu(x.permute(0, 2, 3, 4, 1).contiguous(), self.gamma).permute(0, 4, 1, 2, 3)


def _fits(conv: WanCausalConv3d) -> bool:
    kt, kh, kw = conv.kernel_size
    same = (kw // 2, kw // 2, kh // 2, kh // 2, kt - 1, 0)
    return (
        conv.in_channels <= TRITON_CONV_MAX_CHANNELS
        and conv.in_channels % 16 == 0
        and conv.stride == (1, 1, 1)
        and tuple(conv._padding) == same
        and conv.bias is not None
        and kh % 2 == kw % 2 == 1
    )


def _conv_forward(self: WanCausalConv3d, x: torch.Tensor, cache_x: torch.Tensor | None = None) -> torch.Tensor:
    """x: (B, C, T, H, W); cache_x: up to kt - 1 earlier frames; the rest of the causal front is zeros."""
    front = self.kernel_size[0] - 1
    frames = [x.permute(0, 2, 3, 4, 1)]
    if front and cache_x is not None:
        frames.insert(0, cache_x.to(x.device).permute(0, 2, 3, 4, 1))
    missing = front - sum(f.shape[1] for f in frames[:-1])
    if missing > 0:
        frames.insert(0, x.new_zeros(x.shape[0], missing, *x.shape[3:], x.shape[1]))
    stacked = torch.cat(frames, dim=1).contiguous()
    return causal_conv3d(stacked, self.gemm_weight, self.bias, self.kernel_size).permute(0, 4, 1, 2, 3)
