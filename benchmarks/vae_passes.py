"""Microbenchmark: Wan VAE decode of one Helios segment (9 latent frames -> 33 frames at 384x640) in the ways the
engine could run it: diffusers' per-latent loop (`vae.decode`) or our wide passes (`helios.vae_passes`), in
fp32 or bf16, with or without channels-last convolution weights, cuDNN autotuning or a compiled decoder; and the
encode of a 33-frame clip (image-to-video encodes one, a continued video one per 33 frames), diffusers' 4-frame
loop against our wide passes on the kernels.
Run on the GPU: `python -m benchmarks.vae_passes [name filter]` (prints a table, one JSON line per variant)."""

import functools
import json
import sys
import time

import torch

from benchmarks.bench import build_vae
from helios.faster.vae_kernels import use_vae_kernels
from helios.vae_passes import decode_latents, encode_pixels


def to_channels_last(vae):
    for module in vae.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)


def timed(fn, repeats=5):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], (torch.cuda.max_memory_allocated() - base) / 2**30


def main():
    device = torch.device("cuda")
    latents = torch.randn(1, 16, 9, 48, 80, device=device)
    rows = []
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    variants = [
        # name, dtype, latents per pass (None: diffusers' loop), channels_last, cudnn autotune, compiled decoder or encode
        ("fp32, per latent (the reference)", torch.float32, None, False, False, False),
        ("bf16, per latent, channels_last_3d (engine before)", torch.bfloat16, None, True, False, False),
        ("bf16, passes of 4 latents", torch.bfloat16, 4, False, False, False),
        ("bf16, passes of 4, channels_last_3d", torch.bfloat16, 4, True, False, False),
        ("bf16, passes of 4, channels_last_3d, cudnn.benchmark", torch.bfloat16, 4, True, True, False),
        ("bf16, passes of 8, channels_last_3d, cudnn.benchmark", torch.bfloat16, 8, True, True, False),
        ("bf16, passes of 2, channels_last_3d, cudnn.benchmark", torch.bfloat16, 2, True, True, False),
        ("bf16, passes of 4, Triton norm+SiLU and narrow convs, channels_last_3d", torch.bfloat16, 4, "triton", True, False),
        ("bf16, passes of 2, Triton norm+SiLU and narrow convs, channels_last_3d", torch.bfloat16, 2, "triton", True, False),
    ]
    variants += [
        ("encode: bf16, diffusers' 4 frames at a time, channels_last_3d, cudnn.benchmark", torch.bfloat16, None, True, True, "encode"),
        ("encode: bf16, passes of 2 latents, Triton kernels, channels_last_3d, cudnn.benchmark", torch.bfloat16, 2, "triton", True, "encode"),
        ("encode: bf16, passes of 8 latents, Triton kernels, channels_last_3d, cudnn.benchmark", torch.bfloat16, 8, "triton", True, "encode"),
    ]
    clip = torch.rand(1, 3, 33, 384, 640, device=device) * 2 - 1
    for name, dtype, per_pass, channels_last, autotune, compiled in variants:
        if only not in name:
            continue
        torch.backends.cudnn.benchmark = autotune
        vae = build_vae(device, dtype)
        if channels_last == "triton":
            use_vae_kernels(vae)
            to_channels_last(vae)
        elif channels_last:
            to_channels_last(vae)
        if compiled == "encode":
            x = clip.to(dtype)
            fn = functools.partial(vae.encode, x) if per_pass is None else functools.partial(encode_pixels, vae, x, per_pass)
        else:
            if compiled:
                vae.decoder = torch.compile(vae.decoder)
            z = latents.to(dtype)
            if per_pass is None:
                fn = functools.partial(vae.decode, z, return_dict=False)
            else:
                fn = functools.partial(decode_latents, vae, z, per_pass)
        try:
            seconds, extra_gib = timed(fn)
            row = dict(variant=name, seconds=round(seconds, 4), peak_extra_gib=round(extra_gib, 2))
        except Exception as exc:
            row = dict(variant=name, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        print(json.dumps(row), flush=True)
        rows.append(row)
        del vae, fn
        torch._dynamo.reset()
        torch.cuda.empty_cache()
    print("\n| variant | s per segment | peak extra GiB |\n|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r.get('seconds', r.get('error'))} | {r.get('peak_extra_gib', '')} |")


if __name__ == "__main__":
    main()
