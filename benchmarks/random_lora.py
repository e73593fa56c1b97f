"""Random LoRA adapter files for a Helios transformer (a tiny one in the tests, the full-size one in
`benchmarks.lora_speed`), in the key layouts diffusers' Helios loader reads."""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
           "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2")


def write_lora(path: Path, transformer, rank: int = 4, seed: int = 0, targets=TARGETS, metadata: dict | None = None,
               keys: str = "diffusers", dtype: torch.dtype = torch.float32) -> Path:
    """Random down and up matrices (both non-zero, so the adapter changes the frames) for every block's `targets`;
    `keys="wan"` writes the original Wan/ComfyUI names (`diffusion_model.blocks.0.self_attn.q.lora_down.weight`)."""
    wan = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
           "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
           "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o", "ffn.net.0.proj": "ffn.0",
           "ffn.net.2": "ffn.2"}
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, _ in enumerate(transformer.blocks):
        for target in targets:
            layer = transformer.get_submodule(f"blocks.{i}.{target}")
            out_features, in_features = getattr(layer, "base", layer).weight.shape  # an adapter may be installed
            down = (torch.randn(rank, in_features, generator=g) * 0.3).to(dtype)
            up = (torch.randn(out_features, rank, generator=g) * 0.3).to(dtype)
            if keys == "wan":
                name = f"diffusion_model.blocks.{i}.{wan[target]}"
                state[f"{name}.lora_down.weight"], state[f"{name}.lora_up.weight"] = down, up
            else:
                name = f"transformer.blocks.{i}.{target}"
                state[f"{name}.lora_A.weight"], state[f"{name}.lora_B.weight"] = down, up
    if metadata:  # diffusers' metadata: a whole PEFT LoraConfig, its keys prefixed by the component
        config = dict(target_modules=sorted({k.split(".lora")[0][len("transformer."):] for k in state}), **metadata)
        metadata = {f"transformer.{k}": v for k, v in config.items()}
    save_file(state, str(path), metadata={"lora_adapter_metadata": json.dumps(metadata)} if metadata else None)
    return path
