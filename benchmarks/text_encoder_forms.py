"""`python -m benchmarks.text_encoder_forms --model FOLDER`: the text encoder in each form a memory tier keeps it in,
loaded from the folder as the app loads it: bf16 on the GPU (`resident`), bf16 in pinned host memory passing through
the GPU layer by layer (`text-offload`), and its layers and token embedding in int8 rows in host memory (`fp8`
tiers; its layers were FP8 before the 12-02 c session). Per form: host bytes it holds, load seconds, seconds per new
prompt, and how far its embeddings are from the bf16 GPU ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

PROMPTS = (
    "A red fox walks through fresh snow at dawn",
    "A lighthouse on a cliff in a storm, waves breaking, cinematic",
    "Close-up of a hummingbird drinking from a purple flower, slow motion",
    "A busy night market in the rain, neon signs reflected in puddles",
)


def load(folder: Path, tier: str, device):
    import transformers

    from helios.fit.capability import Capabilities
    from helios.fit.size import model_size
    from helios.fit.tiers import HOST_BASE, Placement, resolve
    from helios.weights.files import HostLedger, Loading, WeightFiles, empty
    from helios.weights.place import place_text_encoder

    resolved = resolve(Placement(memory=tier), Capabilities.detect(device), model_size(folder))
    config = transformers.UMT5Config.from_pretrained(folder / "text_encoder")
    encoder = empty(lambda: transformers.UMT5EncoderModel(config)).eval()
    ledger = HostLedger(None, HOST_BASE)
    weights = WeightFiles(folder / "text_encoder", ledger)
    start = time.perf_counter()
    Loading(lambda: place_text_encoder(encoder, resolved, device, weights, torch.bfloat16), device).wait()
    return encoder, ledger.pinned, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import transformers

    from helios.text import PromptEncoder

    device = torch.device("cuda")
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model / "tokenizer")
    reference, results = None, []
    for tier in ("resident", "text-offload", "fp8"):
        encoder, pinned, load_s = load(args.model, tier, device)
        prompts = PromptEncoder(tokenizer, encoder, device, torch.bfloat16)
        prompts.encode("warm-up")
        embeds, times = [], []
        for prompt in PROMPTS:
            torch.cuda.synchronize()
            start = time.perf_counter()
            embeds.append(prompts.encode(prompt).float())
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        embeds = torch.cat(embeds)
        reference = embeds if reference is None else reference
        error = ((embeds - reference).norm() / reference.norm()).item()
        cosine = torch.nn.functional.cosine_similarity(embeds.flatten(1), reference.flatten(1)).min().item()
        results.append(dict(form=tier, host_pinned_gib=round(pinned / 2**30, 2), load_s=round(load_s, 1),
                            new_prompt_s=round(sorted(times)[len(times) // 2], 3), relative_error=round(error, 5),
                            min_cosine=round(cosine, 5), gpu_gib_after=round(torch.cuda.memory_allocated() / 2**30, 2)))
        print(json.dumps(results[-1]), flush=True)
        del encoder, prompts
        torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
