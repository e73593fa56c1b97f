"""The transformer's self-attention on the FP8 kernel (helios/faster/kernels/fp8_attention.py): q·k in FP8, the history
keys' amplification applied to their logits. Cross-attention to the 512 text tokens stays bf16 (a small share of the
time). On a CPU (tests) the kernel runs in Triton's interpreter, which has no FP8: scaled operands keep their dtype
there.
"""

from __future__ import annotations

from typing import Iterable

import torch
from diffusers.models.transformers.transformer_helios import (
    HeliosAttention,
    _get_qkv_projections,
    apply_rotary_emb_transposed,
)

from helios.faster.kernels.fp8_attention import fp8_attention


def history_scale(attn: HeliosAttention, tokens: int, context_length: int) -> tuple[torch.Tensor | None, int]:
    """The per-head factor on the first `history` keys, and that count (0 where this attention amplifies none)."""
    history = tokens - context_length
    if attn.is_cross_attention or not attn.is_amplify_history or history <= 0:
        return None, 0
    factor = 1.0 + torch.sigmoid(attn.history_key_scale.float()) * (attn.max_scale - 1.0)
    return factor.expand(attn.heads), history


class Fp8SelfAttention:
    """The processor of each block's attn1 (self-attention: no text, no mask), in place of HeliosAttnProcessor."""

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb, original_context_length):
        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        query, key, value = (t.unflatten(2, (attn.heads, -1)) for t in (attn.norm_q(query), attn.norm_k(key), value))
        if rotary_emb is not None:
            query, key = apply_rotary_emb_transposed(query, rotary_emb), apply_rotary_emb_transposed(key, rotary_emb)
        scale, history = history_scale(attn, hidden_states.shape[1], original_context_length)
        out = fp8_attention(query, key, value, scale, history, fp8=query.is_cuda).flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def apply_fp8_attention(blocks: Iterable[torch.nn.Module]) -> None:
    for block in blocks:
        block.attn1.set_processor(Fp8SelfAttention())
