"""Query/key RMSNorm across heads fused with the rotary embedding (and, for keys, the history amplification).

Helios normalizes q and k over all heads (5120 wide), rounds to bf16, applies the interleaved rotary embedding in
fp32, rounds again, and for keys multiplies the history tokens by a per-head scale in a third pass. Here each
token's row is read once and written once: the norm, the rotation and the scale happen in fp32 registers.
"""

import torch
import triton
import triton.language as tl

from .rows import rows_per_program


@triton.jit
def _qk_norm_rope_kernel(
    x_ptr, x_row_stride, weight_ptr, freqs_ptr, head_scale_ptr, out_ptr, rows, tokens, history, eps,
    D: tl.constexpr, HALF_HEAD: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    ROTATE: tl.constexpr, SCALE_HISTORY: tl.constexpr,
):
    row = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)[:, None]
    pairs = tl.arange(0, BLOCK)[None, :]
    mask = (row < rows) & (pairs < D // 2)
    even = tl.load(x_ptr + row * x_row_stride + 2 * pairs, mask=mask, other=0.0).to(tl.float32)
    odd = tl.load(x_ptr + row * x_row_stride + 2 * pairs + 1, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt((tl.sum(even * even, axis=1) + tl.sum(odd * odd, axis=1))[:, None] / D + eps)
    even = even * rstd * tl.load(weight_ptr + 2 * pairs, mask=pairs < D // 2, other=0.0).to(tl.float32)
    odd = odd * rstd * tl.load(weight_ptr + 2 * pairs + 1, mask=pairs < D // 2, other=0.0).to(tl.float32)
    if ROTATE:
        i = pairs % HALF_HEAD
        cos = tl.load(freqs_ptr + row * 4 * HALF_HEAD + 2 * i, mask=mask, other=0.0)
        sin = tl.load(freqs_ptr + row * 4 * HALF_HEAD + 2 * HALF_HEAD + 2 * i + 1, mask=mask, other=0.0)
        even, odd = even * cos - odd * sin, even * sin + odd * cos
    if SCALE_HISTORY:
        scale = tl.load(head_scale_ptr + pairs // HALF_HEAD, mask=pairs < D // 2, other=1.0)
        scale = tl.where(row % tokens < history, scale, 1.0)
        even, odd = even * scale, odd * scale
    tl.store(out_ptr + row * D + 2 * pairs, even.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(out_ptr + row * D + 2 * pairs + 1, odd.to(out_ptr.dtype.element_ty), mask=mask)


def qk_norm_rope(
    x: torch.Tensor, weight: torch.Tensor, heads: int, freqs: torch.Tensor | None = None,
    head_scale: torch.Tensor | None = None, history: int = 0, eps: float = 1e-6,
) -> torch.Tensor:
    """x: (B, N, D), rows may be strided (a chunk of a fused projection); weight: (D,); freqs: (B, N, 2 * head_dim)
    fp32, cosines then sines, each repeated per pair (HeliosRotaryPosEmbed's layout), or None for no rotation;
    head_scale: fp32 (heads,) multiplying the first `history` tokens. Returns (B, N, heads, head_dim), x's dtype."""
    batch, tokens, d = x.shape
    if x.stride(-1) != 1 or x.stride(0) != tokens * x.stride(1):
        x = x.contiguous()
    out = torch.empty(batch, tokens, heads, d // heads, dtype=x.dtype, device=x.device)
    rotate, scaled = freqs is not None, head_scale is not None and history > 0
    rows, block = batch * tokens, triton.next_power_of_2(d // 2)
    per_program = rows_per_program(2 * block)
    _qk_norm_rope_kernel[(triton.cdiv(rows, per_program),)](
        x, x.stride(1), weight, freqs.contiguous() if rotate else x, head_scale.float() if scaled else x, out,
        rows, tokens, history, eps, D=d, HALF_HEAD=d // heads // 2, ROWS=per_program, BLOCK=block,
        ROTATE=rotate, SCALE_HISTORY=scaled, num_warps=8,
    )
    return out


def qk_norm_rope_reference(x, weight, heads, freqs=None, head_scale=None, history=0, eps=1e-6) -> torch.Tensor:
    """What HeliosAttnProcessor does to a query or key: RMSNorm, split heads, rotate, scale history keys."""
    normed = torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps).unflatten(2, (heads, -1))
    if freqs is not None:
        x1, x2 = normed.unflatten(-1, (-1, 2)).unbind(-1)
        cos, sin = freqs.unsqueeze(-2).chunk(2, dim=-1)
        rotated = torch.empty_like(normed)
        rotated[..., 0::2] = x1 * cos[..., 0::2] - x2 * sin[..., 1::2]
        rotated[..., 1::2] = x1 * sin[..., 1::2] + x2 * cos[..., 0::2]
        normed = rotated.type_as(x)
    if head_scale is not None and history > 0:
        normed = torch.cat([normed[:, :history] * head_scale.view(1, 1, -1, 1), normed[:, history:]], dim=1)
    return normed.type_as(x)
