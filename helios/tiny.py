"""A small seeded random Helios checkpoint in diffusers layout, so everything runs on a CPU.

Its frames are random-weight noise: it exists to exercise loading, streaming and the app, not to make video.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

TINY_MARKER = "helios_studio_tiny.json"

FLAVOURS = ("distilled", "mid", "base")


@dataclass(frozen=True)
class TinySpec:
    flavour: str = "distilled"
    seed: int = 0
    gamma: float = 0.25
    """Not the schedulers' 1/3: with it diffusers' float32 Cholesky fails on a CPU, and the preview compares against
    diffusers' pipeline too."""
    layers: int = 2
    amplify_history: bool = True


def _byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def build_tiny(folder: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Write a tiny checkpoint of the given flavour to `folder` with save_pretrained; return the folder."""
    from diffusers import (
        AutoencoderKLWan,
        HeliosDMDScheduler,
        HeliosPipeline,
        HeliosPyramidPipeline,
        HeliosScheduler,
        HeliosTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    if spec.flavour not in FLAVOURS:
        raise ValueError(f"unknown tiny flavour {spec.flavour!r}")
    folder = Path(folder)
    torch.manual_seed(spec.seed)
    tokenizer = _byte_tokenizer()
    text_dim = 32
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer), d_model=text_dim, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
    ).eval()
    transformer = HeliosTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, text_dim=text_dim, freq_dim=32, ffn_dim=64,
        num_layers=spec.layers, rope_dim=(4, 6, 6), is_amplify_history=spec.amplify_history,
    ).eval()
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1).eval()
    parts = dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer)
    if spec.flavour == "distilled":
        pipe = HeliosPyramidPipeline(scheduler=HeliosDMDScheduler(gamma=spec.gamma), is_distilled=True, **parts)
    elif spec.flavour == "mid":
        pipe = HeliosPyramidPipeline(scheduler=HeliosScheduler(gamma=spec.gamma), is_cfg_zero_star=True, **parts)
    else:
        pipe = HeliosPipeline(scheduler=HeliosScheduler(stages=1), **parts)
    pipe.save_pretrained(folder)
    (folder / TINY_MARKER).write_text(marker(spec))
    return folder


def marker(spec: TinySpec) -> str:
    """What a tiny folder was built from: a preset built from another spec (an older version's) is built again."""
    return json.dumps({"flavour": spec.flavour, "seed": spec.seed, "gamma": spec.gamma})
