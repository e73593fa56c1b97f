"""`python -m benchmarks.lora_speed --out F.json`: what a LoRA adapter costs on a GPU, with full-size random weights.

For bf16, then FP8 (torchao's linears): Generate's FPS without an adapter and with a rank-64 adapter on every attention
and feed-forward linear of the 40 blocks at strength 1, at [2,2,2] and [1,1,1] (`benchmarks.bench.run_engine`, 10
segments after a 2-segment warm run); then a run whose strength changes every segment, counting the graphs Dynamo
compiled and the CUDA graphs captured across it (neither may grow), and whether an adapter keyframed in at segment 3
leaves segments 1-2 bit-identical to the run without it (compiled blocks, CUDA graphs). Once: the seconds from a ~300 MB
adapter file (rank 32) to a run using it (hashing, reading, installing). Written after every measurement."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from .random_lora import write_lora


def measure(engine, lora, steps_sets, results: list, label: str, out: Path) -> None:
    from helios.timeline import PromptTimeline, TimelineEntry

    from .bench import run_engine

    def record(**r):
        results.append(dict(name=label, **r))
        out.write_text(json.dumps(results, indent=1))
        print(json.dumps(results[-1]), flush=True)

    for steps in steps_sets:
        for loras in ((), (lora,)):
            run_engine(engine, steps, 2, loras=loras)
            r = run_engine(engine, steps, 10, loras=loras)
            record(steps=list(steps), adapter=bool(loras), fps=round(r["frames"] / r["wall_s"], 3))
    from torch._dynamo.utils import counters

    graphs, captured = counters["stats"]["unique_graphs"], len(engine.forward.graphs) if engine.forward else 0
    rows = tuple(TimelineEntry(k, "benchmark", lora=(("adapter", 0.25 * (k % 5)),)) for k in range(10))
    run_engine(engine, steps_sets[-1], 10, loras=(lora,), timeline=PromptTimeline(rows, 0))
    record(strength_changes=9, new_dynamo_graphs=counters["stats"]["unique_graphs"] - graphs,
           new_cuda_graphs=(len(engine.forward.graphs) if engine.forward else 0) - captured)
    plain = segment_frames(engine, steps_sets[-1], ())
    keyed = segment_frames(engine, steps_sets[-1], (lora,), PromptTimeline((
        TimelineEntry(0, "benchmark", lora=(("adapter", 0.0),)), TimelineEntry(2, "benchmark", lora=(("adapter", 1.0),))
    ), 0))
    later = [round((a.float() - b.float()).abs().mean().item(), 2) for a, b in zip(plain[2:], keyed[2:])]
    record(keyframed_at_segment=3, first_two_identical=all(torch.equal(a, b) for a, b in zip(plain[:2], keyed[:2])),
           later_mean_abs_diff=later)


def segment_frames(engine, steps, loras, timeline=None) -> list[torch.Tensor]:
    from helios.request import GenerationRequest, GenerationSettings
    from helios.run import Run
    from helios.timeline import PromptTimeline

    settings = GenerationSettings(num_frames=33 * 4, pyramid_steps=tuple(steps), seed=0)
    request = GenerationRequest(timeline or PromptTimeline.single("benchmark"), settings, loras=loras)
    return [torch.from_numpy(seg.frames) for seg in Run(engine, request).segments()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rank", type=int, default=64)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("error: the LoRA speed run needs a CUDA GPU; on a CPU: python -m pytest tests/test_lora.py.")
    from helios.engine import Engine
    from helios.lora.file import LoraFile
    from helios.placement import Placement, WeightForm

    from .bench import build_transformer, build_vae, place

    device = torch.device("cuda", torch.cuda.current_device())
    results: list = []
    with tempfile.TemporaryDirectory(prefix="helios-lora-speed-") as folder:
        for fp8 in (False, True):
            parts = dict(transformer=build_transformer(device), vae=build_vae(device, torch.bfloat16),
                         text_encoder=None)
            engine = Engine(place(parts, Placement(weights=WeightForm(memory="resident", fp8=fp8)), device))
            engine.prompts.remember("benchmark", torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16) * 0.1)
            if not fp8:
                big = write_lora(Path(folder) / "big.safetensors", engine.model.transformer, rank=32,
                                 dtype=torch.bfloat16)
                start = time.perf_counter()
                engine.model.lora.use((LoraFile.of(big),))
                torch.cuda.synchronize()
                results.append(dict(load_s=round(time.perf_counter() - start, 3),
                                    file_mb=round(big.stat().st_size / 1e6, 1)))
                lora = LoraFile.of(write_lora(Path(folder) / "adapter.safetensors", engine.model.transformer,
                                              rank=args.rank, dtype=torch.bfloat16))
            measure(engine, lora, [(2, 2, 2), (1, 1, 1)], results, f"{'FP8' if fp8 else 'bf16'} rank {args.rank}",
                    args.out)
            del engine, parts
            torch._dynamo.reset()
            torch.cuda.empty_cache()
    results.insert(0, dict(gpu=torch.cuda.get_device_name()))
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
