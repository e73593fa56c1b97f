"""The Wan VAE in a few wide passes instead of one pass per latent: decoding a segment, encoding the context.

diffusers' `AutoencoderKLWan.decode` runs the decoder once per latent frame, carrying each causal convolution's
last two input frames in a cache. A causal convolution over several frames at once, given the same cache, sees
exactly the frames it would have seen one at a time, so the first latent (which becomes one frame) goes alone and
the rest go `latents_per_pass` at a time: the same video from far fewer, larger GPU launches. The pass width
bounds the decoder's activation memory.

Encoding is the mirror image: diffusers' `_encode` runs the encoder on the first frame, then 4 frames at a time (one
latent each). The encoder's causal convolutions carry two frames and its temporal downsampling (kernel 3, stride 2)
one, so 4k frames at once produce exactly the k latents of k passes.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan, patchify, unpatchify
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from .limits import LATENT_FRAMES, SPATIAL_COMPRESSION

FRAMES_PER_LATENT = 4
LATENTS_PER_PASS = 2
"""The engine's default pass width, decoding and encoding: wider is faster and holds more activation memory."""


def decode_latents(vae: AutoencoderKLWan, z: torch.Tensor, latents_per_pass: int = 4) -> torch.Tensor:
    """z: (B, C, T, h, w) scaled as `vae.decode` takes it. Returns the video in [-1, 1], (B, 3, frames, H, W)."""
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    passes = [x[:, :, :1]] + list(x[:, :, 1:].split(latents_per_pass, dim=2) if x.shape[2] > 1 else ())
    out = [
        vae.decoder(chunk, feat_cache=vae._feat_map, feat_idx=[0], first_chunk=i == 0)
        for i, chunk in enumerate(passes)
    ]
    vae.clear_cache()
    video = torch.cat(out, dim=2)
    if vae.config.patch_size is not None:
        video = unpatchify(video, patch_size=vae.config.patch_size)
    return video.clamp(-1.0, 1.0)


def encode_pixels(vae: AutoencoderKLWan, x: torch.Tensor, latents_per_pass: int = 8) -> DiagonalGaussianDistribution:
    """x: (B, 3, 1 + 4k, H, W) in [-1, 1]. Returns what `vae.encode(x).latent_dist` returns."""
    vae.clear_cache()
    if vae.config.patch_size is not None:
        x = patchify(x, patch_size=vae.config.patch_size)
    width = FRAMES_PER_LATENT * latents_per_pass
    passes = [x[:, :, :1]] + list(x[:, :, 1:].split(width, dim=2) if x.shape[2] > 1 else ())
    out = []
    for chunk in passes:
        vae._enc_conv_idx = [0]
        out.append(vae.encoder(chunk, feat_cache=vae._enc_feat_map, feat_idx=vae._enc_conv_idx))
    vae.clear_cache()
    return DiagonalGaussianDistribution(vae.quant_conv(torch.cat(out, dim=2)))


def warm_decode(vae: AutoencoderKLWan, height: int, width: int) -> None:
    """One decode of a segment of zero latents at a size. In a fresh process the first decode at a size compiles our
    Triton kernels for it (on a fresh machine, with no Triton cache: seven at 384x640, 4.8 s on a 2-core CPU,
    benchmarks/triton_compile_time.py) and autotunes cuDNN's convolutions; done beside the load, the first segment's
    decode finds them ready."""
    z = torch.zeros(1, vae.config.z_dim, LATENT_FRAMES, height // SPATIAL_COMPRESSION, width // SPATIAL_COMPRESSION,
                    dtype=vae.dtype, device=vae.device)
    with torch.inference_mode():
        decode_latents(vae, z, LATENTS_PER_PASS)
