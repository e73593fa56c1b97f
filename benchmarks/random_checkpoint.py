"""`python -m benchmarks.random_checkpoint FOLDER`: a full-size Helios-Distilled checkpoint with random weights, in
diffusers layout, so memory tiers are measured through the loading code a real checkpoint takes (no hub here).

Built on the GPU (seconds, not the minutes of a CPU init) and written with `save_pretrained`: transformer (14B,
bf16), Wan VAE, and a UMT5-XXL-shaped text encoder (5.7B, bf16).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .bench import build_transformer, build_vae


def build_text_encoder(device, layers: int = 24, vocab: int = 256384):
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(vocab_size=vocab, d_model=4096, d_kv=64, d_ff=10240, num_layers=layers, num_heads=64,
                        feed_forward_proj="gated-gelu", is_encoder_decoder=False)
    torch.manual_seed(2)
    with torch.device(device):
        return UMT5EncoderModel(config).to(torch.bfloat16).eval().requires_grad_(False)


def write(folder: Path) -> Path:
    from diffusers import HeliosDMDScheduler, HeliosPyramidPipeline

    from helios.tiny import _byte_tokenizer

    device = torch.device("cuda")
    pipe = HeliosPyramidPipeline(
        tokenizer=_byte_tokenizer(), text_encoder=build_text_encoder(device), vae=build_vae(device, torch.float32),
        transformer=build_transformer(device), scheduler=HeliosDMDScheduler(), is_distilled=True,
    )
    scratch = folder.with_name(folder.name + ".partial")
    pipe.save_pretrained(scratch)
    scratch.rename(folder)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args(argv).folder
    if (folder / "model_index.json").exists():
        print(f"{folder} exists: kept")
        return 0
    start = time.perf_counter()
    write(folder)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"wrote {folder}: {size / 2**30:.1f} GiB in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
