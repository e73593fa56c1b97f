"""The Triton adaLN LayerNorm against its PyTorch reference on fresh random inputs: fp32 in Triton's interpreter
on a CPU, bf16 on a GPU (skipped where there is none)."""

import pytest
import torch

from kernels.adaln_norm import adaln_norm, adaln_norm_reference

GPU = torch.cuda.is_available()


def inputs(tokens, d, dtype, device, per_token=True):
    g = torch.Generator(device="cpu").manual_seed(torch.seed() % 2**31)
    x = (torch.randn(2, tokens, d, generator=g) * 3 + 0.5).to(device, dtype)
    shape = (2, tokens, d) if per_token else (2, 1, d)
    scale = (torch.randn(shape, generator=g) * 0.2).to(device)
    shift = (torch.randn(shape, generator=g) * 0.2).to(device)
    return x, scale, shift


def relative_error(out, ref):
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.mark.parametrize("tokens, d", [(7, 96), (33, 160), (5, 257)])
@pytest.mark.parametrize("per_token", [True, False])
def test_matches_reference_in_fp32(tokens, d, per_token):
    device = "cuda" if GPU else "cpu"
    x, scale, shift = inputs(tokens, d, torch.float32, device, per_token)
    out = adaln_norm(x, scale, shift)
    assert out.dtype == x.dtype and out.shape == x.shape and torch.isfinite(out).all()
    assert relative_error(out, adaln_norm_reference(x, scale, shift)) < 1e-5


def test_every_element_is_written():
    device = "cuda" if GPU else "cpu"
    x, scale, shift = inputs(3, 130, torch.float32, device)
    out = adaln_norm(x, scale, shift)
    assert not torch.isnan(out).any()
    assert relative_error(out, adaln_norm_reference(x, scale, shift)) < 1e-5


@pytest.mark.skipif(not GPU, reason="bf16 is checked on a GPU; the CPU interpreter computes bf16 wrongly")
@pytest.mark.parametrize("tokens, d", [(1024, 5120), (11040, 5120)])
def test_matches_reference_in_bf16_on_gpu(tokens, d):
    x, scale, shift = inputs(tokens, d, torch.bfloat16, "cuda")
    assert relative_error(adaln_norm(x, scale, shift), adaln_norm_reference(x, scale, shift)) < 1e-2
