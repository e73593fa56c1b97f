import pytest
import torch
from torch import nn

from helios.placement.fp8 import Float8Linear, dequantized_linear, quantize_rows, to_float8

GPU = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)


def test_row_quantization_keeps_each_row_within_e4m3_precision():
    t = torch.randn(64, 256) * torch.logspace(-3, 3, 64)[:, None]
    q, scale = quantize_rows(t)
    back = q.float() * scale
    assert q.dtype == torch.float8_e4m3fn
    assert ((back - t).norm(dim=1) / t.norm(dim=1)).max() < 0.05


def test_swaps_every_block_linear_and_nothing_else(tiny_checkpoint):
    from diffusers import HeliosTransformer3DModel

    transformer = HeliosTransformer3DModel.from_pretrained(tiny_checkpoint("distilled"), subfolder="transformer")
    in_blocks = sum(isinstance(m, nn.Linear) for m in transformer.blocks.modules())
    outside = sum(isinstance(m, nn.Linear) for m in transformer.modules()) - in_blocks
    assert to_float8(transformer) == in_blocks > 0
    assert sum(isinstance(m, nn.Linear) for m in transformer.modules()) == outside
    assert sum(isinstance(m, Float8Linear) for m in transformer.blocks.modules()) == in_blocks


@pytest.mark.skipif(not GPU, reason="FP8 matmuls need a GPU with FP8 tensor cores (Ada or Hopper)")
def test_float8_linear_matches_its_dequantized_product_on_gpu():
    linear = nn.Linear(5120, 13824, device="cuda", dtype=torch.bfloat16)
    layer = Float8Linear(linear)
    x = torch.randn(2, 1000, 5120, device="cuda", dtype=torch.bfloat16)
    out, ref = layer(x).float(), dequantized_linear(x, layer)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-2
    exact = linear(x).float()
    assert ((out - exact).norm() / exact.norm()).item() < 0.08
