"""Put each part of the model where its placement says, filling its weights module by module on the way, so loading
never holds more on the GPU than the tier allows, nor a whole model in host memory: a transformer block is filled on
the GPU, turned to FP8 there if the tier says so (or filled from its saved FP8 form), and moved to pinned host memory
if it is streamed.

Weights come from a checkpoint's files or from modules already built in memory (weights/files.py).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
from torch import nn

from ..faster.aot import apply_aot
from ..faster.fp8_attention import apply_fp8_attention
from ..faster.fused_block import apply_kernels
from ..faster.vae_kernels import apply_vae_kernels
from ..fit.tiers import Fit
from ..parallel.context_parallel import apply_context_parallel
from ..parallel.ranks import Ranks
from ..placement import ATTENTION
from .fp8 import apply_float8
from .fp8_saved import SavedFp8
from .int8 import apply_int8, quantize_rows
from .streaming import BlockStream, apply_streaming, streamed_positions


def dtype_rule(dtype: torch.dtype, keep_fp32: tuple[str, ...] = ()):
    """The model's dtype for floating tensors, except modules the model keeps in fp32 (diffusers' own rule).

    Helios' `history_key_scale` is among them in diffusers, but it scales half-precision keys: in fp32 it would
    promote them, and half-precision attention fails, so it takes the model's dtype."""
    keep = tuple(k for k in keep_fp32 if k != "history_key_scale")

    def dtype_of(name: str, stored: torch.dtype) -> torch.dtype:
        if not stored.is_floating_point:
            return stored
        return torch.float32 if any(k in name.split(".") for k in keep) else dtype

    return dtype_of


@contextlib.contextmanager
def _without(parent: nn.Module, name: str):
    """The parent with one child taken out for a while: its other tensors are filled apart from the layers."""
    child = getattr(parent, name)
    setattr(parent, name, nn.ModuleList())
    try:
        yield child
    finally:
        setattr(parent, name, child)


class HostEmbedding(nn.Module):
    """The token embedding looked up in host memory: a prompt reads 512 of its 256k rows, so its 2.1 GB need never
    go to the GPU. `compact` keeps it in int8 rows (weights/int8.py: 1 GiB less host memory for the small cards'
    tiers), widened after the lookup. The tables are plain attributes, which group offloading leaves where they are."""

    ROWS_AT_ONCE = 4096

    def __init__(self, table: torch.Tensor, device: torch.device, compact: bool = False):
        super().__init__()
        self.device, self.dtype = device, table.dtype
        self.rows, self.scales = table.detach(), None  # detached: a Parameter would be registered, and onloaded
        if compact:
            self.rows = torch.empty(table.shape, dtype=torch.int8)
            self.scales = torch.empty(len(table), 1, dtype=torch.float32)
            for start in range(0, len(table), self.ROWS_AT_ONCE):  # a few MB at a time, never a widened table
                rows, scales = quantize_rows(table[start:start + self.ROWS_AT_ONCE].detach())
                self.rows[start:start + len(rows)], self.scales[start:start + len(rows)] = rows, scales

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.rows, self.scales) if t is not None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.cpu()
        looked_up = (
            self.rows[ids] if self.scales is None else (self.rows[ids].float() * self.scales[ids]).to(self.dtype)
        )
        return looked_up.to(self.device, non_blocking=True)


def place_text_encoder(text_encoder: nn.Module | None, fit: Fit, device: torch.device, weights, dtype) -> None:
    """Off the GPU, it waits in pinned host memory (in int8 rows with FP8 tiers: weights/int8.py) and passes through
    the GPU one layer at a time, on a side stream, whenever a new prompt is encoded (diffusers' group offloading)."""
    if text_encoder is None:
        return
    dtype_of = dtype_rule(dtype)
    text_encoder.tie_weights()  # the token embedding is stored once, under `shared`
    if fit.tier.text_on_gpu:
        weights.fill(text_encoder, "", device, dtype_of)
        text_encoder.tie_weights()
        return
    encoder = text_encoder.encoder  # UMT5's layers sit one level down, in encoder.block
    with _without(encoder, "block") as layers:
        weights.fill(text_encoder, "", torch.device("cpu"), dtype_of)  # the embedding and the last norm
        lookup = HostEmbedding(text_encoder.shared.weight, device, compact=fit.tier.fp8_weights)
        text_encoder.shared = encoder.embed_tokens = lookup
        weights.held_in_host(text_encoder, lookup.nbytes)
    for i, layer in enumerate(layers):
        weights.fill(layer, f"encoder.block.{i}.", device, dtype_of)
        if fit.tier.fp8_weights:
            apply_int8(layer)
        weights.pin(layer, device)
    if device.type == "cuda":
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(
            encoder, onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
            num_blocks_per_group=1, use_stream=True, non_blocking=True,
        )


def place_transformer(
    transformer: nn.Module, fit: Fit, device: torch.device, ranks: Ranks, weights, dtype
) -> BlockStream | None:
    faster = fit.placement.faster
    dtype_of = dtype_rule(dtype, tuple(type(transformer)._keep_in_fp32_modules or ()))
    with _without(transformer, "blocks") as blocks:
        weights.fill(transformer, "", device, dtype_of)
    resident = len(blocks) if fit.resident_blocks is None else fit.resident_blocks
    streamed = streamed_positions(len(blocks), resident)
    fp8 = functools.partial(apply_float8, fp8_matmul=fit.fp8_matmul, library=fit.placement.weights.fp8_linears)
    saved = SavedFp8(Path(fit.fp8_form), fp8, weights.ledger, weights.slabs) if fit.fp8_form else None
    for i, block in enumerate(blocks):
        if saved is not None:
            saved.fill(block, f"blocks.{i}.", device, dtype_of)
        else:
            weights.fill(block, f"blocks.{i}.", device, dtype_of)
            if fit.tier.fp8_weights:
                fp8(block)
        if i in streamed:
            weights.pin(block, device)
    if faster.attention == "fp8":
        apply_fp8_attention(blocks)
    if faster.kernels:
        apply_kernels(blocks)
    stream = apply_streaming(blocks, streamed, device)
    backend = ATTENTION[faster.attention].diffusers
    if backend and backend != "native":
        transformer.set_attention_backend(backend)
    if ranks.size > 1:
        apply_context_parallel(transformer, fit.placement.parallel, ranks.size, device)
    if faster.aot != "off":
        apply_aot(blocks, Path(faster.aot))
    elif faster.compile_blocks:
        transformer.compile_repeated_blocks(fullgraph=ranks.size == 1)  # the last block's gather breaks the graph
    return stream


def place_vae(vae: nn.Module, fit: Fit, device: torch.device) -> None:
    faster = fit.placement.faster
    vae.to(device)
    if faster.cudnn_autotune:
        torch.backends.cudnn.benchmark = True
    if faster.channels_last_vae:
        for module in vae.modules():
            if isinstance(module, nn.Conv3d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
    if faster.vae_kernels:
        apply_vae_kernels(vae)
    if faster.compile_vae:
        vae.decoder = torch.compile(vae.decoder)
