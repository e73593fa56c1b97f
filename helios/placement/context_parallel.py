"""One stream on several GPUs: diffusers' context-parallel plan for `HeliosTransformer3DModel` (each rank holds one
contiguous share of the token sequence inside attention and the feed-forward; Ulysses or ring attention), with two
corrections found on the tiny model (two CPU processes over gloo):

- the plan names blocks 0 to 39; a model of another depth gets the same plan for its own blocks;
- Distilled's and Mid's history-key amplification find the history by the sequence length the attention sees, which
  under the split is one rank's share, so the wrong keys were amplified: two ranks' frames differed from one rank's
  by 4 levels on average (76 at most). The history comes first in the sequence, so each rank is told how many of its
  own tokens are history; then the frames agree within one level.
"""

from __future__ import annotations

import torch

from ..errors import ModelUnavailable


def context_parallel_plan(transformer) -> dict:
    """diffusers' plan, its per-block entries made for this model's blocks."""
    plan = type(transformer)._cp_plan
    per_block = {k.split(".", 2)[2]: v for k, v in plan.items() if k.startswith("blocks.0.")}
    shared = {k: v for k, v in plan.items() if not k.split(".")[1].isdigit()}
    return shared | {f"blocks.{i}.{part}": v for i in range(len(transformer.blocks)) for part, v in per_block.items()}


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


def enable_context_parallel(transformer, attention: str, ranks: int, device: torch.device) -> None:
    """Split the transformer over `ranks` processes, one per GPU; `attention` as `Placement.parallel` says."""
    from diffusers import ContextParallelConfig
    from torch.distributed.device_mesh import init_device_mesh

    attention = attention_split(attention, transformer.config.num_attention_heads, ranks)
    shape = (1, ranks) if attention == "ulysses" else (ranks, 1)
    mesh = init_device_mesh(device.type, shape, mesh_dim_names=("ring", "ulysses"))
    degree = dict(ulysses_degree=ranks) if attention == "ulysses" else dict(ring_degree=ranks)
    transformer.enable_parallelism(config=ContextParallelConfig(**degree, mesh=mesh), cp_plan=context_parallel_plan(transformer))
    flat = transformer._parallel_config.context_parallel_config._flattened_mesh
    rank = torch.distributed.get_rank(flat.get_group())
    for block in transformer.blocks:
        block.attn1.register_forward_pre_hook(_history_of_this_share(rank, ranks), with_kwargs=True)


def _history_of_this_share(rank: int, ranks: int):
    """Runs before the split: the attention then derives this rank's history length from its own share."""

    def hook(module, args, kwargs):
        args = list(args)
        hidden_states = args[0] if args else kwargs["hidden_states"]
        in_args = len(args) > 4
        context = args[4] if in_args else kwargs.get("original_context_length")
        if context is None:
            return None
        share = hidden_states.shape[1] // ranks
        history = hidden_states.shape[1] - context
        local_context = share - min(max(history - rank * share, 0), share)
        if in_args:
            args[4] = local_context
        else:
            kwargs["original_context_length"] = local_context
        return tuple(args), kwargs

    return hook
