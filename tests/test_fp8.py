import pytest
import torch
from torch import nn

from helios.weights.fp8 import Float8Linear, apply_float8, dequantized_linear, quantize_rows, to_float8
from helios.weights.streaming import plain_tensors

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


def block_output(library: str, fp8_matmul: bool, device: str) -> torch.Tensor:
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    block = nn.Sequential(nn.Linear(512, 1024), nn.GELU(approximate="tanh"), nn.Linear(1024, 512)).to(device, dtype)
    x = torch.randn(4, 300, 512, device=device, dtype=dtype)
    exact = block(x).float()
    if library:
        apply_float8(block, fp8_matmul, library)
    stored = {t.dtype for t in plain_tensors(block)}
    with torch.no_grad():
        return block(x).float(), exact, stored


@pytest.mark.parametrize("library", ["torchao", "ours"])
def test_weight_only_fp8_stays_close_to_the_exact_block_and_stores_fp8(library):
    out, exact, stored = block_output(library, False, "cpu")
    assert torch.float8_e4m3fn in stored
    assert 1e-4 < ((out - exact).norm() / exact.norm()).item() < 0.05


def test_torchao_linears_leave_the_process_compile_settings_alone():
    """torchao's configs would turn on Inductor's kernel tuning for every later compile: minutes on a fresh GPU."""
    import torch._inductor.config as inductor

    before = (inductor.coordinate_descent_tuning, inductor.coordinate_descent_check_all_directions)
    block_output("torchao", False, "cpu")
    assert (
        (inductor.coordinate_descent_tuning, inductor.coordinate_descent_check_all_directions)
        == before
        == (False, False)
    )


def test_torchao_and_our_linears_compute_the_same_weight_only_product():
    ours, *_ = block_output("ours", False, "cpu")
    theirs, *_ = block_output("torchao", False, "cpu")
    assert ((ours - theirs).norm() / ours.norm()).item() < 1e-3


@pytest.mark.skipif(not GPU, reason="FP8 matmuls need a GPU with FP8 tensor cores (Ada or Hopper)")
def test_torchao_and_our_fp8_matmuls_agree_on_gpu():
    ours, exact, _ = block_output("ours", True, "cuda")
    theirs, *_ = block_output("torchao", True, "cuda")
    assert ((ours - theirs).norm() / ours.norm()).item() < 0.05, "each rounds its activations' scales its own way"
    assert ((theirs - exact).norm() / exact.norm()).item() < 0.08


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="CPU tensors: Triton's interpreter, which runs only where no GPU is"
)
@pytest.mark.parametrize("kernels", [False, True])
def test_fp8_self_attention_computes_the_block_helios_computes(kernels):
    """In fp32 on the CPU only the FP8 rounding is missing, so the block's output must match with history amplified."""
    from diffusers.models.transformers.transformer_helios import HeliosTransformerBlock

    from helios.faster.fp8_attention import apply_fp8_attention
    from helios.faster.fused_block import apply_kernels

    torch.manual_seed(0)
    block = HeliosTransformerBlock(64, 128, 4, "rms_norm_across_heads", True, 1e-6, guidance_cross_attn=True,
                                   is_amplify_history=True).eval()
    block.attn1.history_key_scale.data.normal_()
    tokens, context = 90, 60
    args = (torch.randn(1, tokens, 64), torch.randn(1, 7, 64), torch.randn(1, 6, 64),
            torch.randn(1, tokens, 32), context)
    if kernels:
        apply_kernels([block])
    with torch.no_grad():
        bf16 = block(*args)
        apply_fp8_attention([block])
        fp8 = block(*args)
    assert ((fp8 - bf16).norm() / bf16.norm()).item() < 1e-5


def test_int8_rows_keep_each_weight_within_half_a_step_and_stay_closer_than_fp8():
    """The text encoder's form (weights/int8.py): each value within 1/254 of its row's largest, and on fresh random
    rows nearer the exact product than FP8's rows of the same bytes."""
    from helios.weights.int8 import Int8Linear
    from helios.weights.int8 import quantize_rows as int8_rows

    t = torch.randn(64, 256) * torch.logspace(-3, 3, 64)[:, None]
    q, scale = int8_rows(t)
    assert q.dtype == torch.int8
    assert ((q.float() * scale - t).abs() <= t.abs().amax(1, keepdim=True) / 254 * 1.0001).all()
    linear = nn.Linear(1024, 2048)
    x = torch.randn(8, 1024)
    exact = linear(x)
    with torch.no_grad():
        errors = [
            ((layer(x) - exact).norm() / exact.norm()).item()
            for layer in (Int8Linear(linear), Float8Linear(linear, fp8_matmul=False))
        ]
    assert 0 < errors[0] < errors[1] / 2
