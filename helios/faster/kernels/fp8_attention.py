"""Self-attention with FP8 queries and keys: flash attention's online softmax, q·k on FP8 tensor cores, p·v in bf16.

Queries and keys are quantized per token and head (e4m3, one fp32 scale per 128-wide head vector), so an outlier
costs precision only in its own row; the scales multiply the logits. Values, probabilities and the output stay
bf16: an FP8 p·v would need the probabilities in e4m3 too, whose 3 mantissa bits blur small weights.

Helios amplifies the history tokens' keys by a per-head factor (up to 10x). Scaling the keys before quantizing would
only move their scales; here the factor multiplies those keys' logits instead, which is the same product.
"""

import math

import torch
import triton
import triton.language as tl

E4M3_MAX = 448.0
LOG2E = 1.4426950408889634


@triton.jit
def _step(
    acc, m_i, l_i, q, q_scale, k_ptrs, v_ptrs, ks_ptrs, start, kv_len, history, history_scale,
    stride_kn, stride_vn, stride_sn, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, SCALE_HISTORY: tl.constexpr,
    PRECISION: tl.constexpr,
):
    offs_n = start + tl.arange(0, BLOCK_N)
    if MASKED:
        inside = offs_n < kv_len
        k = tl.load(k_ptrs + start * stride_kn, mask=inside[:, None], other=0.0)
        k_scale = tl.load(ks_ptrs + start * stride_sn, mask=inside, other=0.0)
        v = tl.load(v_ptrs + start * stride_vn, mask=inside[:, None], other=0.0)
    else:
        k = tl.load(k_ptrs + start * stride_kn)
        k_scale = tl.load(ks_ptrs + start * stride_sn)
        v = tl.load(v_ptrs + start * stride_vn)
    if SCALE_HISTORY:
        k_scale = tl.where(offs_n < history, k_scale * history_scale, k_scale)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * (q_scale[:, None] * k_scale[None, :])
    if MASKED:
        s = tl.where(inside[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    p = tl.math.exp2(s - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return acc, m_new, l_i * alpha + tl.sum(p, 1)


@triton.jit
def _fp8_attention_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    qs_ptr,
    ks_ptr,
    hs_ptr,
    out_ptr,
    q_len,
    kv_len,
    history,
    heads,
    logit_scale,
    stride_qb,
    stride_qn,
    stride_kb,
    stride_kn,
    stride_vb,
    stride_vn,
    stride_ob,
    stride_on,
    stride_qsb,
    stride_ksb,
    stride_sn,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SCALE_HISTORY: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """One program: BLOCK_M queries of one head of one batch item against all keys. Tensors are (B, N, H, D) with D
    contiguous; scales (B, N, H). `logit_scale` is the softmax scale times log2(e): the softmax runs in base 2."""
    batch_head = tl.program_id(1)
    b, h = batch_head // heads, batch_head % heads
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)
    rows = offs_m < q_len
    q = tl.load(
        q_ptr + b * stride_qb + h * HEAD_DIM + offs_m[:, None] * stride_qn + offs_d[None, :],
        mask=rows[:, None],
        other=0.0,
    )
    q_scale = (tl.load(qs_ptr + b * stride_qsb + h + offs_m * stride_sn, mask=rows, other=0.0) * logit_scale).to(
        tl.float32
    )
    k_ptrs = k_ptr + b * stride_kb + h * HEAD_DIM + offs_n[:, None] * stride_kn + offs_d[None, :]
    v_ptrs = v_ptr + b * stride_vb + h * HEAD_DIM + offs_n[:, None] * stride_vn + offs_d[None, :]
    ks_ptrs = ks_ptr + b * stride_ksb + h + offs_n * stride_sn
    history_scale = tl.load(hs_ptr + h) if SCALE_HISTORY else 1.0
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    full = kv_len // BLOCK_N * BLOCK_N
    for start in range(0, full, BLOCK_N):
        acc, m_i, l_i = _step(
            acc, m_i, l_i, q, q_scale, k_ptrs, v_ptrs, ks_ptrs, start, kv_len, history, history_scale,
            stride_kn, stride_vn, stride_sn, BLOCK_N, False, SCALE_HISTORY, PRECISION,
        )
    if full < kv_len:
        acc, m_i, l_i = _step(
            acc, m_i, l_i, q, q_scale, k_ptrs, v_ptrs, ks_ptrs, full, kv_len, history, history_scale,
            stride_kn, stride_vn, stride_sn, BLOCK_N, True, SCALE_HISTORY, PRECISION,
        )
    out = acc / l_i[:, None]
    out_ptrs = out_ptr + b * stride_ob + h * HEAD_DIM + offs_m[:, None] * stride_on + offs_d[None, :]
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=rows[:, None])


def quantize_heads(x: torch.Tensor, fp8: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (B, N, H, D) -> (values, fp32 scales (B, N, H)), each head vector scaled onto e4m3's range. With fp8=False
    the scaled values keep x's dtype: the CPU interpreter, which has no FP8, checks everything else that way."""
    scale = x.abs().amax(dim=-1).float().clamp(min=1e-12) / E4M3_MAX
    values = x.float() / scale[..., None]
    return values.to(torch.float8_e4m3fn if fp8 else x.dtype), scale


def fp8_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, history_scale: torch.Tensor | None = None, history: int = 0,
    fp8: bool = True, block_m: int = 128, block_n: int = 64, warps: int = 8, stages: int = 3,
) -> torch.Tensor:
    """q: (B, Nq, H, D), k and v: (B, Nk, H, D), diffusers' layout; history_scale: (H,) multiplying the logits of the
    first `history` keys. Returns (B, Nq, H, D) in v's dtype."""
    batch, q_len, heads, head_dim = q.shape
    kv_len = k.shape[1]
    qv, qs = quantize_heads(q, fp8)
    kv, ks = quantize_heads(k, fp8)
    v = v if v.stride(-1) == 1 and v.stride(2) == head_dim else v.contiguous()
    out = torch.empty(batch, q_len, heads, head_dim, dtype=v.dtype, device=v.device)
    scaled = history_scale is not None and history > 0
    _fp8_attention_kernel[(triton.cdiv(q_len, block_m), batch * heads)](
        qv, kv, v, qs, ks, history_scale.float().contiguous() if scaled else qs, out, q_len, kv_len, history, heads,
        LOG2E / math.sqrt(head_dim), qv.stride(0), qv.stride(1), kv.stride(0), kv.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1), qs.stride(0), ks.stride(0), qs.stride(1),
        HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, SCALE_HISTORY=scaled,
        PRECISION="ieee" if v.dtype == torch.float32 else "tf32", num_warps=warps, num_stages=stages,
    )
    return out


def fp8_attention_reference(q, k, v, history_scale=None, history=0) -> torch.Tensor:
    """What Helios computes: the history keys amplified per head, then plain softmax attention (fp32 here)."""
    if history_scale is not None and history > 0:
        k = torch.cat([k[:, :history] * history_scale.view(1, 1, -1, 1), k[:, history:]], dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(*(t.float().transpose(1, 2) for t in (q, k, v)))
    return out.transpose(1, 2).to(v.dtype)
