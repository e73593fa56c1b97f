"""Microbenchmark of the Triton kernels against their PyTorch references (eager and torch.compile), and of one
full-size transformer block with and without them, at one full-resolution Helios segment with history
(11,040 tokens, 8,640 of them the segment's, x 5120). Run on the GPU: `python benchmarks/kernel_bench.py`."""

import json

import torch
import triton
from diffusers.models.attention_dispatch import AttentionBackendName
from diffusers.models.transformers.transformer_helios import HeliosTransformerBlock

from helios.faster.fused_block import apply_kernels
from helios.faster.kernels.adaln_norm import adaln_norm, adaln_norm_reference
from helios.faster.kernels.causal_conv3d import causal_conv3d, gemm_weight
from helios.faster.kernels.fp8_attention import fp8_attention, quantize_heads
from helios.faster.kernels.gated_residual import gated_residual, gated_residual_reference
from helios.faster.kernels.qk_norm_rope import qk_norm_rope, qk_norm_rope_reference

TOKENS, CONTEXT, D, HEADS = 11040, 8640, 5120, 40


def bench(fn) -> float:
    return triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")


def kernel_rows():
    x = torch.randn(1, TOKENS, D, device="cuda", dtype=torch.bfloat16)
    y = torch.randn_like(x)
    temb = torch.randn(1, 6, TOKENS, D, device="cuda", dtype=torch.bfloat16).permute(0, 2, 1, 3)
    bias = torch.randn(D, device="cuda") * 0.1
    angles = torch.randn(1, TOKENS, 64, device="cuda").repeat_interleave(2, dim=-1)
    freqs = torch.cat([angles.cos(), angles.sin()], dim=-1)
    weight = torch.ones(D, device="cuda", dtype=torch.bfloat16)
    head_scale = torch.rand(HEADS, device="cuda") * 9 + 1
    history = TOKENS - CONTEXT
    token_bytes = TOKENS * D * 2
    cases = [
        (
            "adaln_norm",
            adaln_norm,
            adaln_norm_reference,
            (x, temb[:, :, 1], temb[:, :, 0], bias, bias),
            4 * token_bytes,
        ),
        ("gated_residual", gated_residual, gated_residual_reference, (x, y, temb[:, :, 2], bias), 4 * token_bytes),
        (
            "qk_norm_rope (keys)",
            qk_norm_rope,
            qk_norm_rope_reference,
            (x, weight, HEADS, freqs, head_scale, history),
            2 * token_bytes + freqs.numel() * 4,
        ),
    ]
    for name, kernel, reference, args, moved in cases:
        compiled = torch.compile(reference)
        for variant, fn in [("eager reference", reference), ("torch.compile reference", compiled), ("triton", kernel)]:
            ms = bench(lambda: fn(*args))
            yield dict(kernel=name, variant=variant, ms=round(ms, 4), gbps=round(moved / ms / 1e6, 1))


def block_rows():
    """One HeliosTransformerBlock (bf16 weights, fp32 norms and table, as loaded): eager / compiled, with and
    without the kernels."""
    torch.manual_seed(0)
    block = HeliosTransformerBlock(D, 13824, HEADS, "rms_norm_across_heads", True, 1e-6, guidance_cross_attn=True,
                                   is_amplify_history=True).cuda().to(torch.bfloat16).eval().requires_grad_(False)
    for name in ("norm1", "norm2", "norm3"):
        getattr(block, name).float()
    block.scale_shift_table.data = block.scale_shift_table.data.float()
    for module in (block.attn1, block.attn2):
        module.processor._attention_backend = AttentionBackendName._NATIVE_CUDNN
    x = torch.randn(1, TOKENS, D, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(1, 512, D, device="cuda", dtype=torch.bfloat16)
    temb = (torch.randn(1, 6, TOKENS, D, device="cuda") * 0.1).to(torch.bfloat16).permute(0, 2, 1, 3)
    angles = torch.randn(1, TOKENS, 64, device="cuda").repeat_interleave(2, dim=-1)
    freqs = torch.cat([angles.cos(), angles.sin()], dim=-1)
    args = (x, text, temb, freqs, CONTEXT)
    with torch.inference_mode():
        for kernels in (False, True):
            if kernels:
                apply_kernels([block])
            for compiled in (False, True):
                torch._dynamo.reset()
                fn = torch.compile(block, fullgraph=True) if compiled else block
                ms = bench(lambda: fn(*args))
                name = f"{'compiled' if compiled else 'eager'}{' + kernels' if kernels else ''}"
                yield dict(kernel="transformer block (11,040 tokens)", variant=name, ms=round(ms, 3), gbps=None)


def conv_rows():
    """The VAE decoder's 3x3x3 convolutions at a pass of 4 latents (16 frames + 2 causal): cuDNN (as the module
    runs it, and with channels-last weights) against the Triton implicit GEMM at a few tile shapes."""
    for c, frames, h, w in [(96, 16, 384, 640), (192, 16, 192, 320), (384, 8, 96, 160)]:
        x = torch.randn(1, frames + 2, h, w, c, device="cuda", dtype=torch.bfloat16)
        weight5 = torch.randn(c, c, 3, 3, 3, device="cuda", dtype=torch.bfloat16) * (27 * c) ** -0.5
        bias = torch.randn(c, device="cuda", dtype=torch.bfloat16)
        gemm = gemm_weight(weight5)
        flops = 2 * frames * h * w * c * c * 27
        ncdhw = x.permute(0, 4, 1, 2, 3).contiguous()
        cl = x.permute(0, 4, 1, 2, 3)
        weight_cl = weight5.contiguous(memory_format=torch.channels_last_3d)
        pad = (0, 1, 1)
        variants = [
            ("cuDNN conv3d, NCDHW", lambda: torch.nn.functional.conv3d(ncdhw, weight5, bias, padding=pad)),
            ("cuDNN conv3d, channels_last_3d", lambda: torch.nn.functional.conv3d(cl, weight_cl, bias, padding=pad)),
        ]
        tiles = [(128, 128, 8, 3), (128, 64, 4, 4), (256, 128, 8, 3), (128, 128, 4, 4), (64, 128, 4, 4)]
        for bm, bn, warps, stages in tiles:
            variants.append(
                (
                    f"triton BM={bm} BN={bn} warps={warps} stages={stages}",
                    lambda bm=bm, bn=bn, warps=warps, stages=stages: causal_conv3d(
                        x, gemm, bias, (3, 3, 3), bm, bn, warps, stages
                    ),
                )
            )
        for name, fn in variants:
            try:
                ms = bench(fn)
                yield dict(
                    kernel=f"causal conv3d {c}->{c}, {frames}x{h}x{w}",
                    variant=name,
                    ms=round(ms, 3),
                    tflops=round(flops / ms / 1e9, 1),
                )
            except Exception as exc:
                yield dict(kernel=f"causal conv3d {c}->{c}", variant=name, error=str(exc)[:200])


def attention_rows():
    """Self-attention at one segment with history (11,040 tokens, 40 heads x 128): cuDNN and flash bf16 SDPA against
    the FP8 kernel at a few tile shapes (history keys amplified inside it; SDPA gets them scaled beforehand, a pass
    not counted here). The kernel's rows include its q/k quantization; a last row times that quantization alone."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(1, TOKENS, HEADS, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    head_scale = torch.rand(HEADS, device="cuda") * 9 + 1
    history = TOKENS - CONTEXT
    flops = 4 * HEADS * TOKENS * TOKENS * 128
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    variants = []
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION):
        def sdpa(backend=backend):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)
        variants.append((f"bf16 SDPA, {backend.name}", sdpa))
    tiles = [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 4, 4), (128, 128, 8, 2), (64, 64, 4, 3), (128, 32, 4, 4)]
    for bm, bn, warps, stages in tiles:
        variants.append(
            (
                f"FP8 q/k, BM={bm} BN={bn} warps={warps} stages={stages}",
                lambda bm=bm, bn=bn, w=warps, s=stages: fp8_attention(q, k, v, head_scale, history, True, bm, bn, w, s),
            )
        )
    variants.append(
        (
            "the FP8 kernel's q/k quantization alone (compiled)",
            torch.compile(lambda: [quantize_heads(t) for t in (q, k)]),
        )
    )
    for name, fn in variants:
        try:
            ms = bench(fn)
            yield dict(
                kernel="self-attention 11,040 tokens, 40x128",
                variant=name,
                ms=round(ms, 3),
                tflops=round(flops / ms / 1e9, 1),
            )
        except Exception as exc:
            yield dict(kernel="self-attention", variant=name, error=f"{type(exc).__name__}: {str(exc)[:200]}")


def main():
    rows = []
    for row in [*conv_rows(), *kernel_rows(), *block_rows()]:
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| kernel | variant | ms | GB/s (bytes read + written once) or TFLOP/s |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kernel']} | {r['variant']} | {r.get('ms', r.get('error'))} | "
            f"{r.get('gbps') or r.get('tflops') or ''} |"
        )


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--convs"]:
        rows = list(conv_rows())
        for r in rows:
            print(r, flush=True)
    elif sys.argv[1:] == ["--attention"]:
        for r in attention_rows():
            print(json.dumps(r), flush=True)
    else:
        main()
