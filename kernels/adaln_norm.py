"""adaLN LayerNorm: y = LayerNorm(x) * (1 + scale) + shift, per token, in one pass over the row.

The block's eager form reads x, writes its fp32 copy, normalizes, multiplies and adds in separate passes; here
each token's row is read once, reduced in fp32 in registers and written once in x's dtype.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _adaln_norm_kernel(x_ptr, scale_ptr, shift_ptr, out_ptr, D, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < D
    x = tl.load(x_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / D
    centered = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=0) / D + eps)
    scale = tl.load(scale_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
    shift = tl.load(shift_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
    y = centered * rstd * (1.0 + scale) + shift
    tl.store(out_ptr + row * D + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def adaln_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x: (..., D) in any float dtype; scale, shift: broadcastable to x (fp32 in Helios). Returns x's dtype."""
    d = x.shape[-1]
    x2 = x.contiguous().view(-1, d)
    scale2 = scale.expand_as(x).contiguous().view(-1, d)
    shift2 = shift.expand_as(x).contiguous().view(-1, d)
    out = torch.empty_like(x2)
    _adaln_norm_kernel[(x2.shape[0],)](x2, scale2, shift2, out, d, eps, BLOCK=triton.next_power_of_2(d), num_warps=8)
    return out.view_as(x)


def adaln_norm_reference(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """What HeliosTransformerBlock computes: FP32LayerNorm without affine, then the adaLN modulation."""
    normed = torch.nn.functional.layer_norm(x.float(), (x.shape[-1],), eps=eps)
    return (normed * (1 + scale) + shift).type_as(x)
