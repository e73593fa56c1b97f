"""Put host-loaded components where their placement says, converting on the way, never holding more on the GPU than
the tier allows: the transformer goes one block at a time (to the GPU, to FP8 there, back to host memory if streamed).
"""

from __future__ import annotations

import torch
from torch import nn

from .fp8 import block_to_float8
from .fp8_attention import use_fp8_attention
from .fused_block import use_kernels
from .context_parallel import enable_context_parallel
from .options import Resolved
from .ranks import Ranks
from .streaming import BlockStream, stream_blocks, streamed_positions
from .vae_kernels import use_vae_kernels


def place_text_encoder(text_encoder: nn.Module | None, resolved: Resolved, device: torch.device) -> None:
    """Off the GPU, it waits in pinned host memory and passes through the GPU one layer at a time, on a side stream,
    whenever a new prompt is encoded (diffusers' group offloading); its inputs go to `device` either way."""
    if text_encoder is None:
        return
    if resolved.tier.text_on_gpu or device.type != "cuda":
        text_encoder.to(device)
        return
    from diffusers.hooks import apply_group_offloading

    layered = getattr(text_encoder, "encoder", text_encoder)  # UMT5's layers sit one level down, in encoder.block
    apply_group_offloading(
        layered, onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
        num_blocks_per_group=1, use_stream=True, non_blocking=True,
    )


def place_transformer(transformer: nn.Module, resolved: Resolved, device: torch.device, ranks: Ranks) -> BlockStream | None:
    paths = resolved.placement
    blocks = transformer.blocks
    transformer.blocks = nn.ModuleList()
    transformer.to(device)
    transformer.blocks = blocks
    resident = len(blocks) if resolved.resident_blocks is None else resolved.resident_blocks
    streamed = streamed_positions(len(blocks), resident)
    for i, block in enumerate(blocks):
        block.to(device)
        if resolved.tier.fp8_weights:
            block_to_float8(block, resolved.fp8_matmul, paths.fp8_linears)
        if i in streamed:
            block.to("cpu")
    if paths.fp8_attention:
        use_fp8_attention(blocks)
    if paths.kernels:
        use_kernels(blocks)
    stream = stream_blocks(blocks, streamed, device)
    if paths.attention_backend:
        transformer.set_attention_backend(paths.attention_backend)
    if ranks.size > 1:
        enable_context_parallel(transformer, paths.parallel, ranks.size, device)
    if paths.compile_blocks:
        transformer.compile_repeated_blocks(fullgraph=ranks.size == 1)  # the last block's gather breaks the graph
    return stream


def place_vae(vae: nn.Module, resolved: Resolved, device: torch.device) -> None:
    paths = resolved.placement
    vae.to(device)
    if paths.cudnn_autotune:
        torch.backends.cudnn.benchmark = True
    if paths.channels_last_vae:
        for module in vae.modules():
            if isinstance(module, nn.Conv3d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
    if paths.vae_kernels:
        use_vae_kernels(vae)
    if paths.compile_vae:
        vae.decoder = torch.compile(vae.decoder)
