"""Microbenchmark: Wan VAE decode of one Helios segment (9 latent frames -> 33 frames at 384x640) in the ways the
engine could run it. Run on the GPU: `python benchmarks/vae_decode.py` (prints a table, one JSON line per variant)."""

import json
import time

import torch

from helios.bench import build_vae


def to_channels_last_3d(vae):
    for module in vae.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)


def timed_decode(vae, latents, repeats=5):
    for _ in range(2):
        vae.decode(latents, return_dict=False)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        vae.decode(latents, return_dict=False)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    latents = torch.randn(1, 16, 9, 48, 80, device=device)
    rows = []
    for name, dtype, channels_last, compiled in [
        ("fp32 (reference)", torch.float32, False, False),
        ("bf16", torch.bfloat16, False, False),
        ("bf16 channels_last_3d", torch.bfloat16, True, False),
        ("bf16 compiled decoder", torch.bfloat16, False, True),
        ("bf16 channels_last_3d, compiled decoder", torch.bfloat16, True, True),
    ]:
        vae = build_vae(device, dtype)
        if channels_last:
            to_channels_last_3d(vae)
        if compiled:
            vae.decoder = torch.compile(vae.decoder)
        try:
            seconds = timed_decode(vae, latents.to(dtype))
            row = dict(variant=name, seconds=round(seconds, 4))
        except Exception as exc:
            row = dict(variant=name, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        print(json.dumps(row), flush=True)
        rows.append(row)
        del vae
        torch.cuda.empty_cache()
    print("\n| variant | s per segment |\n|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r.get('seconds', r.get('error'))} |")


if __name__ == "__main__":
    main()
