"""`python -m benchmarks.bench`: diffusers' HeliosPyramidPipeline and our engine, same process, same GPU, same
full-size random weights (speed does not depend on weight values); text encoding excluded for both.

With `--memory TIER --cap-gib N --model FOLDER` it measures one memory tier under a cap instead, loading a full-size
checkpoint (`python -m benchmarks.random_checkpoint FOLDER` writes one with random weights) as the app does.

Prints one JSON line per measured run and a table with the ratios; `--out` writes the JSON list.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import time

import numpy as np
import torch
from PIL import Image

from helios.engine import Engine, EngineOptions
from helios.fit.capability import Capabilities
from helios.fit.here import decide
from helios.fit.tiers import ModelSize
from helios.flavour import DISTILLED
from helios.limits import parse_steps
from helios.loading import LoadOptions, assemble, load_checkpoint
from helios.parallel.ranks import ranks
from helios.placement import Placement, Speedups, WeightForm
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run, follow, warm_up
from helios.timeline import PromptTimeline


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


def run_engine(engine, steps, segments, timeline: PromptTimeline | None = None, **context):
    settings = GenerationSettings(num_frames=33 * segments, pyramid_steps=tuple(steps), seed=0)
    request = GenerationRequest(timeline or PromptTimeline.single("benchmark"), settings, **context)
    torch.cuda.synchronize()
    start = time.perf_counter()
    first, frames, denoise, decode = None, 0, 0.0, 0.0
    for seg in Run(engine, request).segments():
        first = first if first is not None else time.perf_counter() - start
        frames += len(seg.frames)
        denoise += seg.timings.denoise_s
        decode += seg.timings.decode_s
    wall = time.perf_counter() - start
    return dict(frames=frames, wall_s=wall, transformer_s=denoise, vae_decode_s=decode, first_frame_s=first)


def first_frames(engine, steps) -> dict:
    """Seconds to the first frame for each task: the image and video contexts pass through the VAE encoder first."""
    rng = np.random.default_rng(0)
    video = np.repeat(rng.integers(0, 256, (1, 384, 640, 3), dtype=np.uint8), 66, axis=0)
    contexts = dict(text={}, image=dict(image=Image.fromarray(video[0])), video=dict(video=video))
    out = {}
    for name, context in contexts.items():
        run_engine(engine, steps, 1, **context)
        out[name] = round(run_engine(engine, steps, 2, **context)["first_frame_s"], 3)
    return out


def psnr_between(a, b) -> dict:
    diff = a.astype(float) - b.astype(float)
    mse = float((diff**2).mean())
    return dict(
        mean_abs_levels=round(float(abs(diff).mean()), 3), psnr_db=round(10 * math.log10(255**2 / max(mse, 1e-12)), 2),
        within_one_level=round(float((abs(diff) <= 1).mean()), 4),
    )


def engine_frames(engine):
    settings = GenerationSettings(num_frames=66, pyramid_steps=(2, 2, 2), seed=0)
    run = Run(engine, GenerationRequest(PromptTimeline.single("benchmark"), settings))
    return np.concatenate([s.frames for s in run.segments()])


FP8_VARIANTS = {
    "ours": (
        "FP8 linears (ours), bf16 attention",
        Placement(
            weights=WeightForm(memory="resident", fp8=True, fp8_linears="ours"), faster=Speedups(attention="cudnn")
        ),
    ),
    "torchao": (
        "FP8 linears (torchao), bf16 attention",
        Placement(
            weights=WeightForm(memory="resident", fp8=True, fp8_linears="torchao"), faster=Speedups(attention="cudnn")
        ),
    ),
    "ours+attention": (
        "FP8 linears (ours) and FP8 attention",
        Placement(
            weights=WeightForm(memory="resident", fp8=True, fp8_linears="ours"), faster=Speedups(attention="fp8")
        ),
    ),
}
"""Each FP8 piece on its own fresh load, so the run shows what each one buys and costs."""


def size_of(parts) -> ModelSize:
    """The speed runs bring no text encoder: prompt embeddings are made up."""
    blocks = parts["transformer"].blocks
    block = sum(p.numel() * 2 for p in blocks[0].parameters())
    linear = sum(m.weight.numel() * 2 for m in blocks[0].modules() if isinstance(m, torch.nn.Linear))
    total = sum(p.numel() * 2 for p in parts["transformer"].parameters())
    vae = sum(p.numel() * 2 for p in parts["vae"].parameters())
    return ModelSize(len(blocks), block, linear, total - len(blocks) * block, 0, vae)


def place(parts, placement: Placement, device):
    from diffusers import HeliosDMDScheduler

    from helios.tiny import _byte_tokenizer

    caps = Capabilities.detect(device)
    fit = decide(placement, caps, size_of(parts), parts["transformer"].config, torch.bfloat16)
    parts = dict(parts, scheduler=HeliosDMDScheduler(), tokenizer=_byte_tokenizer())
    return assemble("full-size random weights", None, DISTILLED, parts, device, torch.bfloat16, fit, caps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--steps", default="2,2,2;1,1,1")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--vae-dtype", default="bfloat16", help="our engine's VAE dtype (the reference keeps fp32)")
    parser.add_argument("--vae-latents-per-pass", type=int, default=EngineOptions.vae_latents_per_pass)
    parser.add_argument(
        "--fp8", action="store_true", help="also measure each FP8 piece (fresh loads) and its deviation"
    )
    parser.add_argument(
        "--fp8-variants", default=",".join(FP8_VARIANTS), help=f"with --fp8: which of {', '.join(FP8_VARIANTS)}"
    )
    parser.add_argument(
        "--contexts", action="store_true", help="also time the first frame of image- and video-to-video"
    )
    parser.add_argument(
        "--without-cuda-graphs", action="store_true", help="also measure the engine without CUDA graphs"
    )
    parser.add_argument("--no-cuda-graphs", action="store_true", help="measure the engine without CUDA graphs only")
    parser.add_argument("--no-compile", action="store_true", help="the engine's blocks not compiled")
    parser.add_argument(
        "--aot",
        default=os.environ.get("HELIOS_AOT", "jit"),
        metavar="DIR",
        help="ahead-of-time compiled blocks from DIR (python -m helios compile); jit: the cache's, else JIT; off: JIT",
    )
    parser.add_argument("--memory", help="measure this memory tier alone, loading --model (needs --cap-gib)")
    parser.add_argument("--model", help="with --memory: a checkpoint folder (python -m benchmarks.random_checkpoint)")
    parser.add_argument("--cap-gib", type=float, help="hold the process to this much GPU memory")
    parser.add_argument(
        "--host-memory", type=float, metavar="GIB", help="with --memory: hold the load to this much host memory"
    )
    parser.add_argument("--frames-out", help="save the engine's 2-segment [2,2,2] frames here (.npy)")
    parser.add_argument(
        "--as-capability",
        help="with --memory: run as if the GPU had this compute capability (8.6: no FP8 tensor cores)",
    )
    parser.add_argument(
        "--frames-vs", help="with --memory or torchrun: the deviation of the engine's frames from these (.npy)"
    )
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("error: the benchmark needs a CUDA GPU.")
    if args.memory:
        if not args.model:
            raise SystemExit("error: --memory measures a loaded checkpoint: give --model FOLDER.")
        return measure_tier(args)

    from diffusers import HeliosDMDScheduler, HeliosPyramidPipeline

    me = ranks()
    if me.size > 1 and (args.fp8 or args.contexts or args.without_cuda_graphs):
        raise SystemExit("error: under torchrun the benchmark measures the bf16 engine and the reference only.")
    device = torch.device("cuda", me.local_rank)
    t0 = time.perf_counter()
    transformer = build_transformer(device)
    transformer.set_attention_backend("_native_cudnn")
    if not args.no_compile and me.size == 1:
        transformer.compile_repeated_blocks(fullgraph=True)
    embeds = torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16) * 0.1
    print(f"built the 14B transformer in {time.perf_counter() - t0:.0f} s", flush=True)

    results = []
    step_sets = [parse_steps(s) for s in args.steps.split(";")]

    def record(name, steps, r):
        r = dict(name=name, steps=list(steps), gpu=torch.cuda.get_device_name(), gpus=me.size, **r)
        r["fps"] = r["frames"] / r["wall_s"]
        r["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        r["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        r = {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
        if me.leader:
            print(json.dumps(r), flush=True)
        results.append(r)

    def reference():
        """Under torchrun every rank runs the pipeline on a transformer of its own, split by diffusers' own plan."""
        pipe = HeliosPyramidPipeline(
            tokenizer=None,
            text_encoder=None,
            vae=build_vae(device, torch.float32),
            scheduler=HeliosDMDScheduler(),
            transformer=transformer if me.size == 1 else split_by_diffusers(me.size, not args.no_compile, device),
            is_distilled=True,
        )
        pipe.set_progress_bar_config(disable=True)
        for steps in step_sets:
            run_reference(pipe, embeds, steps, 2)
            torch.cuda.reset_peak_memory_stats()
            record(
                f"diffusers HeliosPyramidPipeline ({'' if args.no_compile else 'compiled, '}cuDNN SDPA, fp32 VAE)",
                steps,
                run_reference(pipe, embeds, steps, args.segments),
            )
        del pipe
        torch.cuda.empty_cache()

    if not args.no_reference and me.size == 1:
        reference()

    def loaded(placement: Placement, transformer=None):
        """A fresh load: placements are fixed at load, so another one is another model."""
        parts = dict(
            transformer=transformer or build_transformer(device),
            vae=build_vae(device, getattr(torch, args.vae_dtype)),
            text_encoder=None,
        )
        return place(parts, placement, device)

    def engine_with(model, **options):
        torch.cuda.empty_cache()
        engine = Engine(model, EngineOptions(vae_latents_per_pass=args.vae_latents_per_pass, **options))
        engine.prompts.remember("benchmark", embeds)
        return engine

    def measure(engine, label):
        for steps in step_sets:
            run_engine(engine, steps, 2)
            torch.cuda.reset_peak_memory_stats()
            record(label, steps, run_engine(engine, steps, args.segments))

    def deviation(name, frames, before):
        results.append(dict(name=name, **psnr_between(frames, before)))
        print(json.dumps(results[-1]), flush=True)

    model = loaded(
        Placement(
            weights=WeightForm(memory="resident"), faster=Speedups(compile_blocks=not args.no_compile, aot=args.aot)
        ),
        transformer,
    )
    engine = engine_with(model, cuda_graphs=not args.no_cuda_graphs)
    if me.size > 1:
        if me.leader:
            measure_leading(engine, measure, args, f"Helios Studio engine on {me.size} GPUs ({model.describe()})")
        else:
            follow(engine)
        if not args.no_reference:
            reference()
        if me.leader:
            summarize(results, args.out)
        return 0
    bf16_frames = engine_frames(engine)
    if args.frames_out:
        np.save(args.frames_out, bf16_frames)
    measure(
        engine, f"Helios Studio engine ({args.vae_dtype} VAE, {model.fit.placement}, CUDA graphs, decode overlapped)"
    )
    if args.contexts:
        for steps in step_sets:
            results.append(dict(name="first frame s by task", steps=list(steps), **first_frames(engine, steps)))
            print(json.dumps(results[-1]), flush=True)
    if args.without_cuda_graphs:
        engine = engine_with(model, cuda_graphs=False)
        measure(engine, "Helios Studio engine, no CUDA graphs")
        deviation("no CUDA graphs vs CUDA graphs, frames", engine_frames(engine), bf16_frames)
    if args.fp8:
        del engine, model, transformer
        frames = {}
        for key in args.fp8_variants.split(","):
            label, placement = FP8_VARIANTS[key]
            torch._dynamo.reset()
            gc.collect()
            torch.cuda.empty_cache()
            model = loaded(placement)
            engine = engine_with(model)
            measure(engine, f"Helios Studio engine, {label} ({model.fit.describe()})")
            frames[key] = engine_frames(engine)
            deviation(
                f"{label} vs bf16 frames (same seed, 2 segments, [2,2,2], random weights)", frames[key], bf16_frames
            )
            del engine, model
        if {"ours", "ours+attention"} <= frames.keys():
            deviation(
                "FP8 attention alone: its frames vs the same FP8 linears without it",
                frames["ours+attention"],
                frames["ours"],
            )
    summarize(results, args.out)
    return 0


def split_by_diffusers(ranks: int, compile_blocks: bool, device):
    """diffusers' context parallelism as its documentation shows it, Ulysses over the ranks (its plan gathers the
    tokens inside each block, so blocks compile with graph breaks there)."""
    from diffusers import ContextParallelConfig

    transformer = build_transformer(device)
    transformer.set_attention_backend("_native_cudnn")
    transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=ranks))
    if compile_blocks:
        transformer.compile_repeated_blocks(fullgraph=False)
    return transformer


def measure_leading(engine, measure, args, label) -> None:
    """Rank 0's part under torchrun: the frames (against one GPU's, with --frames-vs), then the speed runs."""
    try:
        frames = engine_frames(engine)
        if args.frames_vs:
            print(
                json.dumps(
                    dict(
                        name=f"{engine.model.ranks.size} GPUs vs one GPU, frames",
                        **psnr_between(frames, np.load(args.frames_vs)),
                    )
                ),
                flush=True,
            )
        measure(engine, label)
    finally:
        engine.model.ranks.dismiss()


def measure_tier(args) -> int:
    """One tier under one cap, in a process of its own, as the app runs it: load from a folder, warm up at the
    default size, then the first request and a steady one; prompt encoding, bytes moved, host memory, deviation."""
    import resource

    def host_gib():
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1)

    options = LoadOptions(
        placement=Placement(weights=WeightForm(memory=args.memory), faster=Speedups(aot=args.aot)),
        gpu_memory_gib=args.cap_gib,
        host_memory_gib=args.host_memory,
    )
    caps = None
    if args.as_capability:
        major, minor = (int(v) for v in args.as_capability.split("."))
        caps = dataclasses.replace(
            Capabilities.detect(torch.device("cuda"), args.cap_gib, args.host_memory), compute_capability=(major, minor)
        )
    t0 = time.perf_counter()
    model = load_checkpoint(args.model, options, caps)
    torch.cuda.synchronize()
    result = dict(
        banner=model.describe(),
        tier=model.fit.describe(),
        cap_gib=args.cap_gib,
        as_capability=args.as_capability,
        gpu=torch.cuda.get_device_name(),
        notes=list(model.fit.notes),
        load_s=round(time.perf_counter() - t0, 1),
        load_peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
        host_peak_after_load_gib=host_gib(),
    )
    engine = Engine(model)
    t0 = time.perf_counter()
    engine.prompts.encode("benchmark")
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    engine.prompts.encode("a new prompt, as in a live edit")
    torch.cuda.synchronize()
    result.update(first_encode_s=round(t1 - t0, 3), encode_new_prompt_s=round(time.perf_counter() - t1, 3))
    t0 = time.perf_counter()
    warm_up(engine, 384, 640)
    result["warm_up_s"] = round(time.perf_counter() - t0, 1)
    torch.cuda.reset_peak_memory_stats()
    for steps in [parse_steps(s) for s in args.steps.split(";")]:
        first = run_engine(engine, steps, args.segments)
        moved = model.block_stream.bytes_moved if model.block_stream else 0
        r = run_engine(engine, steps, args.segments)
        r.update(fps=r["frames"] / r["wall_s"], first_request_fps=first["frames"] / first["wall_s"])
        r["first_request_share"] = r["first_request_fps"] / r["fps"]
        if model.block_stream:
            r["gib_moved_per_segment"] = (model.block_stream.bytes_moved - moved) / args.segments / 2**30
        result["x".join(map(str, steps))] = {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
    result.update(run_peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                  run_peak_reserved_gib=round(torch.cuda.max_memory_reserved() / 2**30, 2))
    if args.frames_out or args.frames_vs:
        frames = engine_frames(engine)
        if args.frames_out:
            np.save(args.frames_out, frames)
        if args.frames_vs:
            result["deviation_vs_" + args.frames_vs.rsplit("/", 1)[-1]] = psnr_between(frames, np.load(args.frames_vs))
    result["host_peak_gib"] = host_gib()
    print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def summarize(results, out):
    print("\n| run | steps | frames | FPS | first frame s | transformer s | VAE s | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in (r for r in results if "fps" in r):
        print(
            f"| {r['name']} | {r['steps']} | {r['frames']} | {r['fps']} | {r['first_frame_s']} | {r['transformer_s']} "
            f"| {r['vae_decode_s']} | {r['peak_gib']} |"
        )
    refs = {tuple(r["steps"]): r for r in results if r["name"].startswith("diffusers")}
    for r in (r for r in results if "fps" in r):
        ref = refs.get(tuple(r["steps"]))
        if ref and r is not ref:
            print(f"steps {r['steps']}: {r['fps'] / ref['fps']:.2f}x the reference FPS")
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
