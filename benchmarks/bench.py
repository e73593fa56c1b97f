"""`python -m helios.bench`: diffusers' HeliosPyramidPipeline and our engine, same process, same GPU, same
full-size random weights (speed does not depend on weight values); text encoding excluded for both.

Prints one JSON line per measured run and a table with the ratios; `--out` writes the JSON list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import torch

from .speed import FastPaths


def build_transformer(device):
    from diffusers import HeliosTransformer3DModel

    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        transformer = HeliosTransformer3DModel()
    torch.set_default_dtype(torch.float32)
    keep_fp32 = ("time_embedder", "norm1", "norm2", "norm3")
    for name, module in transformer.named_modules():
        if any(k in name.split(".")[-1] for k in keep_fp32):
            module.float()
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if "scale_shift_table" in name or "history_key_scale" in name:
                p.data = p.data.float()
            if p.ndim >= 2:
                p.normal_(0, 0.02)
    return transformer.eval().requires_grad_(False)


def build_vae(device, dtype):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(1)
    with torch.device(device):
        return AutoencoderKLWan().to(dtype).eval().requires_grad_(False)


class _Timed:
    """Adds up GPU time spent in one method (events; synchronizes after each call, like the reference anchor)."""

    def __init__(self, obj, attr):
        self.total, self.calls = 0.0, 0
        original = getattr(obj, attr)

        def timed(*args, **kwargs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = original(*args, **kwargs)
            end.record()
            end.synchronize()
            self.total += start.elapsed_time(end) / 1000
            self.calls += 1
            return out

        self._restore = lambda: setattr(obj, attr, original)
        setattr(obj, attr, timed)

    def restore(self):
        self._restore()


def run_reference(pipe, embeds, steps, segments):
    tr, vae = _Timed(pipe.transformer, "forward"), _Timed(pipe.vae, "decode")
    torch.cuda.synchronize()
    start = time.perf_counter()
    frames = pipe(
        prompt_embeds=embeds, height=384, width=640, num_frames=33 * segments, guidance_scale=1.0,
        pyramid_num_inference_steps_list=list(steps), is_amplify_first_chunk=True,
        generator=torch.Generator("cuda").manual_seed(0), output_type="np",
    ).frames[0]
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    tr.restore(), vae.restore()
    return dict(frames=len(frames), wall_s=wall, transformer_s=tr.total, vae_decode_s=vae.total, first_frame_s=None)


def run_engine(engine, steps, segments):
    from .request import GenerationRequest, GenerationSettings
    from .timeline import PromptTimeline

    settings = GenerationSettings(num_frames=33 * segments, pyramid_steps=tuple(steps), seed=0)
    request = GenerationRequest(PromptTimeline.single("benchmark"), settings)
    torch.cuda.synchronize()
    start = time.perf_counter()
    first, frames, denoise, decode = None, 0, 0.0, 0.0
    for seg in engine.generate(request):
        first = first if first is not None else time.perf_counter() - start
        frames += len(seg.frames)
        denoise += seg.timings.denoise_s
        decode += seg.timings.decode_s
    wall = time.perf_counter() - start
    return dict(frames=frames, wall_s=wall, transformer_s=denoise, vae_decode_s=decode, first_frame_s=first)


def psnr_between(a, b) -> dict:
    diff = a.astype(float) - b.astype(float)
    mse = float((diff**2).mean())
    return dict(
        mean_abs_levels=round(float(abs(diff).mean()), 3), psnr_db=round(10 * math.log10(255**2 / max(mse, 1e-12)), 2),
        within_one_level=round(float((abs(diff) <= 1).mean()), 4),
    )


def recompile(transformer, kernels: bool = False, fp8: bool = False):
    """Switch the shared transformer to another fast path and compile its blocks afresh."""
    from .fp8 import to_float8
    from .fused_block import use_kernels

    torch._dynamo.reset()
    if kernels:
        use_kernels(transformer.blocks)
    if fp8:
        to_float8(transformer)
    transformer.compile_repeated_blocks(fullgraph=True)


def engine_frames(engine):
    import numpy as np

    from .request import GenerationRequest, GenerationSettings
    from .timeline import PromptTimeline

    settings = GenerationSettings(num_frames=66, pyramid_steps=(2, 2, 2), seed=0)
    return np.concatenate([s.frames for s in engine.generate(GenerationRequest(PromptTimeline.single("benchmark"), settings))])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--steps", default="2,2,2;1,1,1")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--vae-dtype", default="bfloat16", help="our engine's VAE dtype (the reference keeps fp32)")
    parser.add_argument("--compile-vae", action="store_true")
    parser.add_argument("--no-channels-last-vae", action="store_true")
    parser.add_argument("--no-vae-kernels", action="store_true", help="the VAE decoder on cuDNN and eager PyTorch only")
    parser.add_argument("--vae-latents-per-pass", type=int, default=FastPaths.vae_latents_per_pass)
    parser.add_argument("--kernels", action="store_true", help="also measure the Triton kernels and their deviation")
    parser.add_argument("--fp8", action="store_true", help="also measure the FP8 opt-in and its deviation from bf16")
    parser.add_argument("--without-cuda-graphs", action="store_true", help="also measure the engine without CUDA graphs")
    parser.add_argument("--only-fp8", action="store_true", help="skip the bf16 engine runs (still measures the deviation)")
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("error: the benchmark needs a CUDA GPU.")

    from diffusers import HeliosDMDScheduler, HeliosPyramidPipeline

    from .engine import Engine
    from .flavour import DISTILLED
    from .loading import HeliosModel

    device = torch.device("cuda")
    t0 = time.perf_counter()
    transformer = build_transformer(device)
    transformer.set_attention_backend("_native_cudnn")
    transformer.compile_repeated_blocks(fullgraph=True)
    embeds = torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16) * 0.1
    print(f"built the 14B transformer in {time.perf_counter() - t0:.0f} s", flush=True)

    results = []
    step_sets = [tuple(int(x) for x in s.split(",")) for s in args.steps.split(";")]

    def record(name, steps, r):
        r = dict(name=name, steps=list(steps), gpu=torch.cuda.get_device_name(), **r)
        r["fps"] = r["frames"] / r["wall_s"]
        r["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        r["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        r = {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
        print(json.dumps(r), flush=True)
        results.append(r)

    if not args.no_reference:
        pipe = HeliosPyramidPipeline(
            tokenizer=None, text_encoder=None, vae=build_vae(device, torch.float32), scheduler=HeliosDMDScheduler(),
            transformer=transformer, is_distilled=True,
        )
        pipe.set_progress_bar_config(disable=True)
        for steps in step_sets:
            run_reference(pipe, embeds, steps, 2)
            torch.cuda.reset_peak_memory_stats()
            record("diffusers HeliosPyramidPipeline (compiled, cuDNN SDPA, fp32 VAE)", steps, run_reference(pipe, embeds, steps, args.segments))
        del pipe
        torch.cuda.empty_cache()

    model = HeliosModel(
        source="full-size random weights", folder=None, flavour=DISTILLED, is_tiny=False, device=device,
        dtype=torch.bfloat16, tokenizer=None, text_encoder=None, transformer=transformer,
        vae=build_vae(device, getattr(torch, args.vae_dtype)), scheduler=HeliosDMDScheduler(),
    )
    paths = FastPaths(
        compile_blocks=False, attention_backend=None, compile_vae=args.compile_vae,
        channels_last_vae=not args.no_channels_last_vae, vae_latents_per_pass=args.vae_latents_per_pass,
        vae_kernels=not args.no_vae_kernels,
    )

    def engine_with(**changes):
        """A fresh engine: CUDA graphs captured by an earlier one would replay the transformer as it was then.
        The cache is emptied first so that memory left cached for an earlier engine's streams counts for nothing."""
        torch.cuda.empty_cache()
        engine = Engine(model, dataclasses.replace(paths, **changes))
        engine.prompts.remember("benchmark", embeds)
        return engine

    def label(engine):
        return f"Helios Studio engine ({args.vae_dtype} VAE, {engine.fast_paths}, decode overlapped)"

    def measure(engine):
        for steps in step_sets:
            run_engine(engine, steps, 2)
            torch.cuda.reset_peak_memory_stats()
            record(label(engine), steps, run_engine(engine, steps, args.segments))

    def deviation(name, engine, before):
        results.append(dict(name=name, **psnr_between(engine_frames(engine), before)))
        print(json.dumps(results[-1]), flush=True)

    engine = engine_with()
    bf16_frames = engine_frames(engine)
    if not args.only_fp8:
        measure(engine)
    if args.without_cuda_graphs:
        del engine
        engine = engine_with(cuda_graphs=False)
        measure(engine)
        deviation("no CUDA graphs vs CUDA graphs, frames", engine, bf16_frames)
    variants = [
        (args.kernels, dict(kernels=True), "kernels vs unfused blocks, frames (same seed, 2 segments, [2,2,2], random weights)"),
        (args.fp8, dict(fp8=True), "FP8 vs bf16 frames (same seed, 2 segments, [2,2,2], random weights)"),
    ]
    applied = {}  # a recompile keeps the earlier switches (the kernels stay in the blocks), so the label does too
    for wanted, changes, name in variants:
        if not wanted:
            continue
        del engine
        recompile(transformer, **changes)
        applied.update(changes)
        engine = engine_with(**applied)
        measure(engine)
        deviation(name, engine, bf16_frames)
        if not changes.get("fp8"):
            bf16_frames = engine_frames(engine)

    print("\n| run | steps | frames | FPS | first frame s | transformer s | VAE s | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in (r for r in results if "fps" in r):
        print(f"| {r['name']} | {r['steps']} | {r['frames']} | {r['fps']} | {r['first_frame_s']} | {r['transformer_s']} | {r['vae_decode_s']} | {r['peak_gib']} |")
    refs = {tuple(r["steps"]): r for r in results if r["name"].startswith("diffusers")}
    for r in (r for r in results if "fps" in r):
        ref = refs.get(tuple(r["steps"]))
        if ref and r is not ref:
            print(f"steps {r['steps']}: {r['fps'] / ref['fps']:.2f}x the reference FPS")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
