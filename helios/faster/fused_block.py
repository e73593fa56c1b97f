"""The transformer block's forward on our Triton kernels (helios/faster/kernels/): the adaLN norms, the gated residual
adds and the self-attention's q/k RMSNorm + rotary embedding + history-key scale each become one pass over the tokens.

Same math as diffusers' HeliosTransformerBlock.forward, computed in fp32 and rounded to bf16 less often; the
matmuls, attention, cross-attention and feed-forward are the block's own modules. `apply_kernels` is the switch.
"""

from __future__ import annotations

import types
from typing import Iterable

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_helios import (
    HeliosAttention,
    HeliosTransformerBlock,
    _get_qkv_projections,
)

from helios.faster.kernels.adaln_norm import adaln_norm
from helios.faster.kernels.fp8_attention import fp8_attention
from helios.faster.kernels.gated_residual import gated_residual
from helios.faster.kernels.qk_norm_rope import qk_norm_rope

from .fp8_attention import Fp8SelfAttention, history_scale

SHIFT, SCALE, GATE, FF_SHIFT, FF_SCALE, FF_GATE = range(6)


def apply_kernels(blocks: Iterable[HeliosTransformerBlock]) -> None:
    for block in blocks:
        block.forward = types.MethodType(fused_block_forward, block)


def fused_block_forward(
    self: HeliosTransformerBlock,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    temb: torch.Tensor,
    rotary_emb: torch.Tensor,
    original_context_length: int,
) -> torch.Tensor:
    """temb: (B, N, 6, D) per token, or (B, 6, D) for all tokens; its rows plus the block's fp32 table modulate."""
    table = self.scale_shift_table.view(6, -1)

    def mod(i: int) -> torch.Tensor:
        return temb[:, :, i] if temb.ndim == 4 else temb[:, i : i + 1]

    x = hidden_states
    normed = adaln_norm(x, mod(SCALE), mod(SHIFT), table[SCALE], table[SHIFT], self.norm1.eps)
    x = gated_residual(
        x, _self_attention(self.attn1, normed, rotary_emb, original_context_length), mod(GATE), table[GATE]
    )

    history = x.shape[1] - original_context_length if self.guidance_cross_attn else 0
    past, present = x[:, :history], x[:, history:]
    cross = self.attn2(
        self.norm2(present.float()).type_as(present), encoder_hidden_states, None, None, original_context_length
    )
    x = torch.cat([past, present + cross], dim=1) if history else present + cross

    normed = adaln_norm(x, mod(FF_SCALE), mod(FF_SHIFT), table[FF_SCALE], table[FF_SHIFT], self.norm3.eps)
    return gated_residual(x, self.ffn(normed), mod(FF_GATE), table[FF_GATE])


def _self_attention(
    attn: HeliosAttention, x: torch.Tensor, rotary_emb: torch.Tensor, context_length: int
) -> torch.Tensor:
    """With FP8 attention the history factor goes to the kernel, which applies it to those keys' logits."""
    query, key, value = _get_qkv_projections(attn, x, None)
    value = value.unflatten(2, (attn.heads, -1))
    head_scale, history = history_scale(attn, x.shape[1], context_length)
    query = qk_norm_rope(query, attn.norm_q.weight, attn.heads, rotary_emb, eps=attn.norm_q.eps)
    if isinstance(attn.processor, Fp8SelfAttention):
        key = qk_norm_rope(key, attn.norm_k.weight, attn.heads, rotary_emb, eps=attn.norm_k.eps)
        out = fp8_attention(query, key, value, head_scale, history, fp8=query.is_cuda)
    else:
        key = qk_norm_rope(key, attn.norm_k.weight, attn.heads, rotary_emb, head_scale, history, eps=attn.norm_k.eps)
        out = dispatch_attention_fn(query, key, value, backend=attn.processor._attention_backend)
    return attn.to_out[0](out.flatten(2, 3).type_as(query))
