"""Gated residual add: x + y * gate, in fp32, rounded once to x's dtype.

The gate is Helios's per-token adaLN gate: a strided bf16 row of the timestep projection plus a learned fp32
table row. The eager block upcasts x and y, materializes the fp32 gate, multiplies and adds in separate passes.
"""

import torch
import triton
import triton.language as tl

from .rows import rows_per_program, token_rows


@triton.jit
def _gated_residual_kernel(
    x_ptr, y_ptr, out_ptr, rows, tokens, D, gate_ptr, gate_sb, gate_sn, gate_bias_ptr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    row = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)[:, None]
    b, n = row // tokens, row % tokens
    cols = (tl.program_id(1) * BLOCK + tl.arange(0, BLOCK))[None, :]
    mask = (row < rows) & (cols < D)
    x = tl.load(x_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
    gate = tl.load(gate_ptr + b * gate_sb + n * gate_sn + cols, mask=mask, other=0.0).to(tl.float32)
    gate += tl.load(gate_bias_ptr + cols, mask=cols < D, other=0.0)
    tl.store(out_ptr + row * D + cols, (x + y * gate).to(out_ptr.dtype.element_ty), mask=mask)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor, gate_bias: torch.Tensor) -> torch.Tensor:
    """x, y: (B, N, D); gate: broadcastable to x, any strides; gate_bias: fp32 (D,). Returns x's dtype."""
    batch, tokens, d = x.shape
    x, y = x.contiguous(), y.contiguous()
    out = torch.empty_like(x)
    gate, gate_sb, gate_sn = token_rows(gate, x)
    rows, block = batch * tokens, min(2048, triton.next_power_of_2(d))
    per_program = rows_per_program(block)
    _gated_residual_kernel[(triton.cdiv(rows, per_program), triton.cdiv(d, block))](
        x, y, out, rows, tokens, d, gate, gate_sb, gate_sn, gate_bias.float().contiguous(),
        ROWS=per_program, BLOCK=block, num_warps=4,
    )
    return out


def gated_residual_reference(x, y, gate, gate_bias) -> torch.Tensor:
    """What HeliosTransformerBlock computes after its self-attention and its feed-forward."""
    return (x.float() + y.float() * (gate_bias + gate.float())).type_as(x)
