"""One stream on several GPUs through diffusers' context parallelism (its hooks, sharders and Ulysses or ring
attention), with a plan of our own for Helios' blocks and two corrections, found on the tiny model (two CPU processes
over gloo) and on two H200s (benchmarks/README.md; the fixes are checked on the CPU, not yet re-run on GPUs):

- diffusers 0.42.1's plan splits the tokens before each block's self-attention, cross-attention and feed-forward and
  gathers them after each: three all-gathers of the whole sequence per block, and fullgraph compile breaks on them.
  Ours splits once, before the first block, and gathers once, after the last: in between each rank keeps its share and
  only attention's all-to-alls (Ulysses) or key/value passes (ring) cross GPUs. The per-token inputs every block gets
  (the timestep modulation and the rotary embedding) are split at each block, a view;
- Distilled's and Mid's history-key amplification find the history by the sequence length they see, which under the
  split is one rank's share, so the wrong keys were amplified (two ranks' frames were 4 levels off one rank's on
  average, 76 at most). The history comes first in the sequence, so each rank is told how many of its own tokens are
  history; then the frames agree within one level;
- a rank whose share is all history has no queries for the cross-attention (it attends to the text, on each rank
  alone): cuDNN's attention has no kernel for zero queries (H200, ring: "No available kernel"; Ulysses: rank 0
  failed while rank 1 waited in its all-to-all), so cross-attention runs on PyTorch's own SDPA, whose math kernel
  takes them (the two CPU ranks of the tests have such shares at the first pyramid stage).
"""

from __future__ import annotations

import torch

from ..errors import ModelUnavailable


def context_parallel_plan(transformer) -> dict:
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    def share(dims: int):
        return ContextParallelInput(split_dim=1, expected_dims=dims, split_output=False)

    return {
        "blocks.*": {"temb": share(4), "rotary_emb": share(3)},
        "blocks.0": {"hidden_states": share(3)},
        f"blocks.{len(transformer.blocks) - 1}": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def attention_split(attention: str, heads: int, ranks: int) -> str:
    """"auto": Ulysses (one all-to-all each way, by heads) when the ranks divide the heads, else ring."""
    if attention == "auto":
        return "ulysses" if heads % ranks == 0 else "ring"
    if attention == "ulysses" and heads % ranks:
        raise ModelUnavailable(
            f"Ulysses attention splits the {heads} attention heads evenly, and {ranks} ranks do not divide them: "
            "start a number of ranks that does, or pass --parallel ring."
        )
    return attention


def apply_context_parallel(transformer, attention: str, ranks: int, device: torch.device) -> None:
    """Split the transformer over `ranks` processes, one per GPU; `attention` as `Placement.parallel` says."""
    from diffusers import ContextParallelConfig
    from diffusers.models.attention_dispatch import AttentionBackendName
    from torch.distributed.device_mesh import init_device_mesh

    attention = attention_split(attention, transformer.config.num_attention_heads, ranks)
    shape = (1, ranks) if attention == "ulysses" else (ranks, 1)
    mesh = init_device_mesh(device.type, shape, mesh_dim_names=("ring", "ulysses"))
    degree = dict(ulysses_degree=ranks) if attention == "ulysses" else dict(ring_degree=ranks)
    transformer.enable_parallelism(
        config=ContextParallelConfig(**degree, mesh=mesh), cp_plan=context_parallel_plan(transformer)
    )
    flat = transformer._parallel_config.context_parallel_config._flattened_mesh
    rank = torch.distributed.get_rank(flat.get_group())
    for block in transformer.blocks:
        block.register_forward_pre_hook(_history_of_this_share(rank, ranks), with_kwargs=True)
        block.attn2.processor._attention_backend = AttentionBackendName.NATIVE


def _history_of_this_share(rank: int, ranks: int):
    """Runs before the split: the block (and its attention) then derive this rank's history from its own share."""

    def hook(module, args, kwargs):
        args = list(args)
        in_args = len(args) > 4
        context = args[4] if in_args else kwargs.get("original_context_length")
        if context is None:
            return None
        tokens = (args[3] if len(args) > 3 else kwargs["rotary_emb"]).shape[1]  # the whole sequence on every rank
        share = tokens // ranks
        history = tokens - context
        local_context = share - min(max(history - rank * share, 0), share)
        if in_args:
            args[4] = local_context
        else:
            kwargs["original_context_length"] = local_context
        return tuple(args), kwargs

    return hook
