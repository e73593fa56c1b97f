"""Correlated block noise for re-noising latents when a pyramid stage doubles the resolution.

The covariance (1+g)I - g*11^T is singular at the schedulers' default g=1/3; float32 Cholesky rejects it on a
CPU. Factoring in float64 with the same tiny jitter succeeds everywhere and agrees with float32 where that works.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=8)
def block_noise_factor(gamma: float, block_size: int, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """Cached per device: a fresh host-to-GPU copy in the denoising loop would make the host wait for the GPU."""
    cov = torch.eye(block_size, dtype=torch.float64) * (1 + gamma) - gamma
    cov += torch.eye(block_size, dtype=torch.float64) * 1e-8
    return torch.linalg.cholesky(cov).float().to(device)


def sample_block_noise(
    shape: tuple[int, int, int, int, int],
    patch: tuple[int, int],
    gamma: float,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Noise of `shape` (B, C, T, H, W), correlated within each ph x pw patch; draws as the reference does: mirrors
    `HeliosPyramidPipeline.sample_block_noise` of diffusers 0.42.1."""
    b, c, t, h, w = shape
    ph, pw = patch
    factor = block_noise_factor(gamma, ph * pw, torch.device(device))
    z = torch.randn(b * c * t * (h // ph) * (w // pw), ph * pw, generator=generator, device=generator.device)
    noise = z.to(device) @ factor.T
    noise = noise.view(b, c, t, h // ph, w // pw, ph, pw).permute(0, 1, 2, 3, 5, 4, 6)
    return noise.reshape(b, c, t, h, w)
