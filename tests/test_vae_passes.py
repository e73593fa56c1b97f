"""The wide-pass VAE decode and encode give what diffusers' per-latent loops give, for any length and pass width
(fp32 on the CPU; the GPU run of the same check is in test_gpu_parity's fast-path tolerance)."""

import copy

import pytest
import torch
from diffusers import AutoencoderKLWan

from helios.faster.vae_kernels import apply_vae_kernels
from helios.vae_passes import decode_latents, encode_pixels


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=16, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return vae


@pytest.mark.parametrize("latents, per_pass", [(9, 4), (9, 8), (9, 3), (5, 1), (2, 4), (1, 4)])
def test_same_video_as_per_latent_decode(vae, latents, per_pass):
    z = torch.randn(1, 16, latents, 6, 10, generator=torch.Generator().manual_seed(latents * 7 + per_pass))
    with torch.no_grad():
        reference = vae.decode(z, return_dict=False)[0]
        ours = decode_latents(vae, z, per_pass)
    assert ours.shape == reference.shape == (1, 3, 1 + 4 * (latents - 1), 48, 80)
    assert reference.std() > 0.05
    assert (ours - reference).abs().max() < 1e-4


@pytest.mark.parametrize("frames, per_pass", [(33, 2), (33, 8), (9, 1), (13, 2), (1, 2)])
def test_same_latents_as_the_per_chunk_encode(vae, frames, per_pass):
    x = torch.rand(1, 3, frames, 48, 80, generator=torch.Generator().manual_seed(frames + per_pass)) * 2 - 1
    with torch.no_grad():
        reference = vae.encode(x).latent_dist
        ours = encode_pixels(vae, x, per_pass)
    assert ours.mean.shape == reference.mean.shape == (1, 16, 1 + (frames - 1) // 4, 6, 10)
    assert reference.mean.std() > 0.05
    assert (ours.mean - reference.mean).abs().max() < 1e-4 and (ours.std - reference.std).abs().max() < 1e-4


def test_triton_kernels_give_the_same_video():
    """The encoder's and decoder's norms and narrow causal convolutions on the Triton kernels (fp32; interpreted on a
    CPU; on a GPU against cuDNN without its default tf32, which alone is off by ~1e-3)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(1)
    vae = AutoencoderKLWan(base_dim=16, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1).eval().to(device)
    z = torch.randn(1, 16, 2, 1, 2, generator=torch.Generator().manual_seed(3)).to(device)
    fast = copy.deepcopy(vae)
    apply_vae_kernels(fast)
    x = torch.rand(1, 3, 5, 8, 16, generator=torch.Generator().manual_seed(4)).to(device) * 2 - 1
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        reference = vae.decode(z, return_dict=False)[0]
        ours = decode_latents(fast, z, 2)
        encoded, encoded_fast = vae.encode(x).latent_dist.mean, encode_pixels(fast, x, 2).mean
    assert ours.shape == reference.shape and reference.std() > 0.05
    assert (ours - reference).abs().max() < 1e-3
    assert encoded_fast.shape == encoded.shape and encoded.std() > 0.05
    assert (encoded_fast - encoded).abs().max() < 1e-3


def test_upsampling_in_bf16_gives_the_same_values():
    """Upsampled without widening to fp32 first: the same bf16 values as diffusers' upsampling."""
    torch.manual_seed(2)
    vae = AutoencoderKLWan(base_dim=16, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1).eval().to(torch.bfloat16)
    upsamples = [m for m in vae.decoder.modules() if type(m).__name__ == "WanUpsample"]
    x = torch.randn(3, 16, 5, 7, dtype=torch.bfloat16)
    expected = [m(x) for m in upsamples]
    apply_vae_kernels(vae)
    got = [m(x) for m in upsamples]
    assert upsamples and all(torch.equal(a, b) and a.shape == (3, 16, 10, 14) for a, b in zip(got, expected))
