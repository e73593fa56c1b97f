"""adaLN LayerNorm: y = LayerNorm(x) * (1 + scale) + shift, per token, in one pass over the row.

Helios gives each token its scale and shift as a per-token row (bf16, a strided view of the timestep projection)
plus a learned fp32 table row. The eager block materializes their fp32 sum, then normalizes, multiplies and adds
in separate passes; here each row of x and of the modulation is read once, reduced in fp32, and written once.
"""

import torch
import triton
import triton.language as tl

from .rows import rows_per_program, token_rows


@triton.jit
def _adaln_norm_kernel(
    x_ptr, out_ptr, rows, tokens, D, eps,
    scale_ptr, scale_sb, scale_sn, scale_bias_ptr,
    shift_ptr, shift_sb, shift_sn, shift_bias_ptr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    row = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)[:, None]
    b, n = row // tokens, row % tokens
    cols = tl.arange(0, BLOCK)[None, :]
    mask = (row < rows) & (cols < D)
    x = tl.load(x_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=1)[:, None] / D
    centered = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=1)[:, None] / D + eps)
    scale = tl.load(scale_ptr + b * scale_sb + n * scale_sn + cols, mask=mask, other=0.0).to(tl.float32)
    scale += tl.load(scale_bias_ptr + cols, mask=cols < D, other=0.0)
    shift = tl.load(shift_ptr + b * shift_sb + n * shift_sn + cols, mask=mask, other=0.0).to(tl.float32)
    shift += tl.load(shift_bias_ptr + cols, mask=cols < D, other=0.0)
    y = centered * rstd * (1.0 + scale) + shift
    tl.store(out_ptr + row * D + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def adaln_norm(
    x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
    scale_bias: torch.Tensor, shift_bias: torch.Tensor, eps: float = 1e-6,
) -> torch.Tensor:
    """x: (B, N, D); scale, shift: broadcastable to x, any strides; scale_bias, shift_bias: fp32 (D,).
    Returns x's dtype."""
    batch, tokens, d = x.shape
    x = x.contiguous()
    out = torch.empty_like(x)
    scale, scale_sb, scale_sn = token_rows(scale, x)
    shift, shift_sb, shift_sn = token_rows(shift, x)
    rows, block = batch * tokens, triton.next_power_of_2(d)
    per_program = rows_per_program(block)
    _adaln_norm_kernel[(triton.cdiv(rows, per_program),)](
        x, out, rows, tokens, d, eps,
        scale, scale_sb, scale_sn, scale_bias.float().contiguous(),
        shift, shift_sb, shift_sn, shift_bias.float().contiguous(),
        ROWS=per_program, BLOCK=block, num_warps=8,
    )
    return out


def adaln_norm_reference(x, scale, shift, scale_bias, shift_bias, eps: float = 1e-6) -> torch.Tensor:
    """What HeliosTransformerBlock computes: FP32LayerNorm without affine, then the adaLN modulation."""
    normed = torch.nn.functional.layer_norm(x.float(), (x.shape[-1],), eps=eps)
    return (normed * (1 + (scale_bias + scale.float())) + (shift_bias + shift.float())).type_as(x)
