"""Causal 3D convolution of the Wan VAE decoder as an implicit GEMM on the tensor cores.

The decoder spends nearly all its time in 3x3x3 convolutions over 96-384 channels, where cuDNN reaches about a
quarter of the H100's bf16 rate. Here each program computes a tile of output voxels x output channels: for each
of the kt*kh*kw taps it gathers the shifted input voxels (channels contiguous, zero outside the frame) and
multiplies them with that tap's weights, accumulating in fp32. The caller has already prepended the causal
frames (cache or zeros), so time needs no mask; height and width are zero-padded by masking.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _causal_conv3d_kernel(
    x_ptr, w_ptr, bias_ptr, out_ptr, voxels, H, W, CO, sx_t, sx_h,
    C: tl.constexpr, KT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    t, y, x = offs_m // (H * W), (offs_m // W) % H, offs_m % W
    chans = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    CHUNKS: tl.constexpr = C // BLOCK_K
    for k in range(KT * KH * KW * CHUNKS):
        tap, c0 = k // CHUNKS, (k % CHUNKS) * BLOCK_K
        kt, ky, kx = tap // (KH * KW), (tap // KW) % KH, tap % KW
        yy, xx = y + ky - KH // 2, x + kx - KW // 2
        valid = (offs_m < voxels) & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        rows = (t + kt).to(tl.int64) * sx_t + yy * sx_h + xx * C
        a = tl.load(x_ptr + rows[:, None] + (c0 + chans)[None, :], mask=valid[:, None], other=0.0)
        b = tl.load(
            w_ptr + (tap * C + c0 + chans)[:, None] * CO + offs_n[None, :], mask=offs_n[None, :] < CO, other=0.0
        )
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    acc += tl.load(bias_ptr + offs_n, mask=offs_n < CO, other=0.0).to(tl.float32)[None, :]
    out = out_ptr + offs_m.to(tl.int64)[:, None] * CO + offs_n[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=(offs_m[:, None] < voxels) & (offs_n[None, :] < CO))


def gemm_weight(weight: torch.Tensor) -> torch.Tensor:
    """Conv3d weight (CO, C, kt, kh, kw) as the kernel reads it: (kt * kh * kw * C, CO), taps major."""
    return weight.permute(2, 3, 4, 1, 0).reshape(-1, weight.shape[0]).contiguous()


def causal_conv3d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, kernel_size: tuple[int, int, int],
    block_m: int = 256, block_n: int = 128, num_warps: int = 8, num_stages: int = 3,
) -> torch.Tensor:
    """x: (B, T + kt - 1, H, W, C) contiguous, causal frames already in front; weight: gemm_weight's layout;
    bias: (CO,). Returns (B, T, H, W, CO) in x's dtype: stride 1, 'same' padding in height and width.
    The block sizes and pipeline depth are tuning knobs (benchmarks/kernel_bench.py sweeps them)."""
    kt, kh, kw = kernel_size
    batch, frames, h, w, c = x.shape
    co = weight.shape[1]
    out = torch.empty(batch, frames - kt + 1, h, w, co, dtype=x.dtype, device=x.device)
    if c % 16:
        raise ValueError(f"the tensor cores take channels in multiples of 16, not {c}")
    block_k = 64 if c % 64 == 0 else 32 if c % 32 == 0 else 16
    block_n = min(block_n, max(16, triton.next_power_of_2(co)))
    voxels = out[0].numel() // co
    grid = (triton.cdiv(voxels, block_m), triton.cdiv(co, block_n))
    for i in range(batch):
        _causal_conv3d_kernel[grid](
            x[i], weight, bias, out[i], voxels, h, w, co, h * w * c, w * c,
            C=c, KT=kt, KH=kh, KW=kw, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
            PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
            num_warps=num_warps, num_stages=num_stages,
        )
    return out


def causal_conv3d_reference(x, weight, bias, kernel_size) -> torch.Tensor:
    """The same convolution through PyTorch: Conv3d with zero 'same' padding in height and width only."""
    kt, kh, kw = kernel_size
    co = weight.shape[1]
    w5 = weight.reshape(kt, kh, kw, -1, co).permute(4, 3, 0, 1, 2)
    y = torch.nn.functional.conv3d(
        x.permute(0, 4, 1, 2, 3), w5.to(x.dtype), bias.to(x.dtype), padding=(0, kh // 2, kw // 2)
    )
    return y.permute(0, 2, 3, 4, 1)
