"""The Wan VAE's channel RMS norm followed by SiLU, over channels-last voxels, in one pass.

WanRMS_norm upcasts to fp32, takes the L2 norm over channels, divides, rounds back, scales by sqrt(C) and gamma
in separate passes, and SiLU is one more: about eight passes over the decoder's largest tensors. Here each
voxel's channels are read once, normalized and activated in fp32 registers, and written once.
"""

import torch
import triton
import triton.language as tl

from .rows import rows_per_program


@triton.jit
def _rms_norm_silu_kernel(x_ptr, gamma_ptr, out_ptr, rows, C, scale, ROWS: tl.constexpr, BLOCK: tl.constexpr):
    row = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)[:, None]
    cols = tl.arange(0, BLOCK)[None, :]
    mask = (row < rows) & (cols < C)
    x = tl.load(x_ptr + row * C + cols, mask=mask, other=0.0).to(tl.float32)
    norm = tl.maximum(tl.sqrt(tl.sum(x * x, axis=1))[:, None], 1e-12)
    gamma = tl.load(gamma_ptr + cols, mask=cols < C, other=0.0).to(tl.float32)
    y = x / norm * scale * gamma
    tl.store(out_ptr + row * C + cols, (y / (1.0 + tl.exp(-y))).to(out_ptr.dtype.element_ty), mask=mask)


def rms_norm_silu(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """x: (..., C) contiguous, one voxel per row; gamma: (C,). silu(x / ||x|| * sqrt(C) * gamma) in x's dtype."""
    c = x.shape[-1]
    rows = x.numel() // c
    out = torch.empty_like(x)
    block = triton.next_power_of_2(c)
    per_program = rows_per_program(block)
    _rms_norm_silu_kernel[(triton.cdiv(rows, per_program),)](
        x, gamma.reshape(-1), out, rows, c, c**0.5, ROWS=per_program, BLOCK=block, num_warps=4
    )
    return out


def rms_norm_silu_reference(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """What the decoder computes (channels last): WanRMS_norm without bias, then SiLU."""
    normed = torch.nn.functional.normalize(x.float(), dim=-1).to(x.dtype)
    return torch.nn.functional.silu(normed * x.shape[-1] ** 0.5 * gamma.reshape(-1).to(x.dtype))
