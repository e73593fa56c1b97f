"""`python -m benchmarks.block_streaming`: our streamed blocks against diffusers' group offloading, one uncompiled
full-size transformer forward at the shapes of the first and last pyramid stage (384x640, history included).

Both stream bf16 blocks from pinned host memory on a side stream; ours can also keep blocks resident (the tiers do).
"""

from __future__ import annotations

import json
import time

import torch

from helios.engine import _history_indices
from helios.weights.streaming import stream_blocks, streamed_positions

from .bench import build_transformer

STAGES = {"stage 1 (96x160)": (12, 20), "stage 3 (384x640)": (48, 80)}


def inputs(h, w, device):
    g = torch.Generator(device).manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g, device=device, dtype=torch.bfloat16)

    return dict(
        hidden_states=rand(1, 16, 9, h, w), timestep=torch.tensor([500.0], device=device),
        encoder_hidden_states=rand(1, 512, 4096) * 0.1,
        latents_history_short=rand(1, 16, 2, 48, 80), latents_history_mid=rand(1, 16, 2, 48, 80),
        latents_history_long=rand(1, 16, 16, 48, 80),
        **{k: v.to(device) for k, v in _history_indices((16, 2, 1)).items()},
    )


def time_forward(transformer, device, repeats=5) -> dict:
    out = {}
    with torch.inference_mode():
        for name, (h, w) in STAGES.items():
            x = inputs(h, w, device)
            transformer(**x, return_dict=False)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                transformer(**x, return_dict=False)
            torch.cuda.synchronize()
            out[name] = round((time.perf_counter() - start) / repeats * 1000, 1)
    return out


def fresh(device, on_gpu: bool):
    transformer = build_transformer(device)
    transformer.set_attention_backend("_native_cudnn")
    for name, param in transformer.named_parameters():
        if name.endswith("history_key_scale"):  # as the loader does: fp32 here would make attention fp32
            param.data = param.data.to(torch.bfloat16)
    if not on_gpu:
        transformer.to("cpu")
        torch.cuda.empty_cache()
    return transformer


def main() -> int:
    device = torch.device("cuda")
    results = {"gpu": torch.cuda.get_device_name(), "unit": "ms per transformer forward"}
    transformer = fresh(device, on_gpu=True)
    results["all resident"] = time_forward(transformer, device)
    del transformer

    from diffusers.hooks import apply_group_offloading

    transformer = fresh(device, on_gpu=False)
    start = time.perf_counter()
    apply_group_offloading(transformer, onload_device=device, offload_type="block_level", num_blocks_per_group=1,
                           use_stream=True, non_blocking=True)
    results["diffusers group offloading setup s"] = round(time.perf_counter() - start, 1)
    results["diffusers group offloading, all 40 blocks streamed"] = time_forward(transformer, device)
    del transformer
    torch.cuda.empty_cache()

    for resident in (0, 32):
        transformer = fresh(device, on_gpu=False)
        positions = streamed_positions(40, resident)
        blocks = transformer.blocks
        transformer.blocks = torch.nn.ModuleList()
        transformer.to(device)
        transformer.blocks = blocks
        for i, block in enumerate(blocks):
            if i not in positions:
                block.to(device)
        start = time.perf_counter()
        stream_blocks(blocks, positions, device)
        results[f"ours {resident} resident setup s"] = round(time.perf_counter() - start, 1)
        results[f"ours, {40 - resident} blocks streamed"] = time_forward(transformer, device)
        del transformer, blocks
        torch.cuda.empty_cache()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
