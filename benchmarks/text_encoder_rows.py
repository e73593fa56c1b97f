"""`python -m benchmarks.text_encoder_rows [--layers N]`: how far the text encoder's embeddings move when its layers
wait in host memory in 8 bits: FP8 (e4m3, row scales, `wo` kept in bf16 as UMT5 casts its input to that weight's
dtype: the small tiers' form before int8) or int8 rows (every linear layer: weights/int8.py), against bf16.

UMT5-XXL widths with random weights as `benchmarks.random_checkpoint` makes them, N of its 24 layers and a small
vocabulary (the error grows with depth; the embedding table is looked up, not multiplied), on the GPU if there is one,
else on the CPU in bf16. Per form: the layers' bytes, the relative error of the embeddings, their lowest cosine.
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
from torch import nn

from helios.weights.fp8 import Float8Linear, swap_linears
from helios.weights.int8 import layer_to_int8

from .random_checkpoint import build_text_encoder


def fp8_rows(layer: nn.Module) -> int:
    """The form before int8 rows: FP8 weight-only, UMT5's `wo` left in bf16."""
    return swap_linears(layer, lambda linear: Float8Linear(linear, fp8_matmul=False), keep=("wo",))


FORMS = {"fp8, wo in bf16": fp8_rows, "int8 rows": layer_to_int8}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--out", help="write the results here (.json)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = build_text_encoder(device, args.layers, vocab=32000)
    ids = torch.randint(0, 32000, (1, args.tokens), generator=torch.Generator().manual_seed(0)).to(device)

    def embed(model: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=ids).last_hidden_state.float()

    def layer_bytes(model: nn.Module) -> int:
        return sum(t.numel() * t.element_size() for t in model.encoder.block.parameters())

    reference = embed(encoder)
    results = [dict(form="bf16", layers=args.layers, layer_gib=round(layer_bytes(encoder) / 2**30, 3), relative_error=0.0, min_cosine=1.0)]
    for form, convert in FORMS.items():
        model = copy.deepcopy(encoder)
        for layer in model.encoder.block:
            convert(layer)
        out = embed(model)
        cosine = nn.functional.cosine_similarity(out.flatten(0, 1), reference.flatten(0, 1), dim=-1).min().item()
        results.append(dict(form=form, layers=args.layers, layer_gib=round(layer_bytes(model) / 2**30, 3),
                            relative_error=round(((out - reference).norm() / reference.norm()).item(), 5),
                            min_cosine=round(cosine, 5)))
        print(json.dumps(results[-1]), flush=True)
        del model
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(device=str(device), results=results), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
