"""`python -m helios generate|compile|suite ...`: the engine on the command line, with a live progress line per
segment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import DEFAULT_MODEL
from .arguments import (
    Parser,
    add_generate_arguments,
    add_placement_arguments,
    load_options_from_args,
    requests_from_args,
)
from .errors import BadInput, HeliosError
from .limits import FRAMES_PER_SEGMENT
from .loading import LoadOptions
from .measures import columns
from .media import check_output_path
from .model_cache import load_model
from .parallel.ranks import ranks
from .placement import Placement, Speedups, WeightForm
from .recipe import Recipe, sidecar
from .request import GenerationRequest, GenerationSettings
from .run import Run, follow
from .suite import add_suite_arguments, run_suite
from .timeline import PromptTimeline
from .video_out import ProgressLine, check_request, make_one, write_csv


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m helios", description="Helios Studio: streaming Helios video generation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    g = sub.add_parser("generate", help="generate a video")
    add_generate_arguments(g)
    c = sub.add_parser("compile", help="build ahead-of-time compiled blocks, so runs start without compiling")
    c.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local diffusers folder, or 'tiny'")
    c.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    c.add_argument(
        "--height", type=int, default=384, help="the example request's size; every size runs from the package"
    )
    c.add_argument("--width", type=int, default=640)
    add_placement_arguments(c, runs=False)
    c.add_argument("--out", type=Path, help="the folder to write (default: the cache folder runs look in)")
    add_suite_arguments(
        sub.add_parser("suite", help="run a file of prompts under several configurations, with a report")
    )
    return parser


def attention_of(faster: dict) -> str:
    """A recipe's attention; recipes before 0.5 named it by two switches."""
    if "attention" in faster:
        return faster["attention"]
    return "fp8" if faster.get("fp8_attention") else ("cudnn" if faster.get("attention_backend") else "native")


def generate(args) -> int:
    recipe = Recipe.read(args.recipe) if args.recipe is not None else None
    if recipe is not None:
        args.model, args.fp8 = recipe.model, recipe.placement["fp8"]
        switches = recipe.placement["switches"]
        args.attention = attention_of(switches.get("faster", switches))  # recipes before 0.4: flat
        args.engine = recipe.engine
    requests = requests_from_args(args, recipe)
    grid = len(requests) > 1
    if grid and args.out.suffix:
        raise BadInput(
            f"{len(requests)} runs (seeds x steps) need a folder for --out, not a file name like {args.out.name}."
        )
    outs = [args.out / f"{name}.mp4" for name, _ in requests] if grid else [check_output_path(args.out)]
    from .engine import Engine

    model = load_model(args.model, load_options_from_args(args, device=args.device, vae_dtype=args.vae_dtype))
    engine = Engine(model)
    if args.engine == "diffusers" and model.ranks.size > 1:
        raise BadInput("diffusers' pipeline runs on one GPU here: run --engine diffusers without torchrun.")
    if not model.ranks.leader:
        follow(engine)
        return 0
    print(model.describe(), flush=True)
    try:
        code = write_videos(engine, requests, outs, grid, args.out, args.engine)
    except BaseException as exc:
        model.ranks.fail(exc)  # the followers may be in a collective that now never completes: they end at once
        raise
    model.ranks.dismiss()
    return code


def compile_blocks(args) -> int:
    """Loads the model as a run would (blocks not compiled), runs one block call of a real request to learn its
    inputs, and builds the package that every later run of this GPU, torch and weight form starts from; with FP8
    weights, first saves their FP8 form (weights/fp8_saved.py), unless they were loaded from it."""
    from .cache import fp8_form_cache
    from .engine import Engine
    from .faster.aot import META, aot_cache, aot_key, build, capture_block_inputs
    from .weights import fp8_saved

    if args.out is not None and args.out.exists() and not (args.out / META).is_file():
        raise BadInput(
            f"--out {args.out} exists and is not an AoT folder: give a new folder (an AoT folder is replaced)."
        )
    placement = Placement(
        weights=WeightForm(memory=args.memory, fp8=args.fp8, fp8_linears=args.fp8_linears),
        faster=Speedups(compile_blocks=False, aot="off"),
    )
    options = LoadOptions(
        args.device, placement=placement, gpu_memory_gib=args.gpu_memory, host_memory_gib=args.host_memory
    )
    model = load_model(args.model, options)
    settings = GenerationSettings(
        height=args.height, width=args.width, num_frames=FRAMES_PER_SEGMENT, pyramid_steps=(1, 1, 1)
    )
    request = GenerationRequest(PromptTimeline.single("a compile example"), settings)
    block = model.transformer.blocks[0]
    block = getattr(block, "block", block)
    inputs = capture_block_inputs(block, lambda: next(Run(Engine(model), request).segments()))
    key = aot_key(model.transformer.config, model.dtype, model.fit, model.capabilities)
    if model.fit.tier.fp8_weights and model.fit.fp8_form is None:
        form = fp8_saved.form_key(model.folder, model.fit, model.dtype)
        seconds = fp8_saved.save(model.transformer.blocks, form, model.folder, fp8_form_cache() / form.name)
        print(f"wrote the FP8 form {fp8_form_cache() / form.name} in {seconds:.0f} s: FP8 starts here read it instead "
              "of quantizing.", flush=True)
    out = args.out or aot_cache() / key.name
    print(f"{model.describe()}\ncompiling {type(block).__name__} for {key.name} ...", flush=True)
    seconds = build(block, inputs, key, out)
    where = "runs on this machine find it by themselves" if args.out is None else f"run with --aot {out}"
    print(f"wrote {out} in {seconds:.0f} s: {where}.")
    return 0


def write_videos(engine, requests, outs: list[Path], grid: bool, folder: Path, which: str = "ours") -> int:
    for _, request in requests:
        check_request(engine, request, which)
    if grid:
        folder.mkdir(parents=True, exist_ok=True)
    settings = requests[0][1].settings
    if settings.num_frames != settings.num_segments * FRAMES_PER_SEGMENT:
        print(
            f"note: {settings.num_frames} frames round up to {settings.num_segments} segments of {FRAMES_PER_SEGMENT}; "
            f"the video will have {settings.output_frames} frames.",
            file=sys.stderr,
        )
    rows = []
    for n, ((_, request), out) in enumerate(zip(requests, outs), 1):
        recipe = make_one(engine, request, out, None if grid else ProgressLine(), which)
        t = recipe.timings
        line = (f"{out.name}: {t['frames']} frames in {t['elapsed_s']:.1f} s ({t['overall_fps']:.1f} FPS, "
                f"first frame {t['first_frame_s']:.2f} s)")
        print(
            f"run {n}/{len(requests)} {line}" if grid else f"wrote {out} and its recipe {sidecar(out).name}: {line}",
            flush=True,
        )
        rows.append(dict(file=out.name, seed=recipe.settings["seed"], steps=recipe.settings["pyramid_steps"], **{
            k: t[k] for k in ("frames", "elapsed_s", "overall_fps", "first_frame_s", "peak_gpu_gib")},
            **columns(recipe.measures)))
    if grid:
        write_csv(folder / "runs.csv", rows)
        print(f"wrote {len(rows)} videos, their recipes and runs.csv to {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"compile": compile_blocks, "suite": run_suite, "generate": generate}[args.command](args)
    except HeliosError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        say("error: interrupted; no output was written.")
        return 130
    except Exception as exc:
        say(f"error: unexpected failure ({type(exc).__name__}: {exc}); please report it.".split("\n")[0])
        return 1


def say(line: str) -> None:
    """Under torchrun the leader speaks for every rank (a follower's own failure reaches it through `Ranks.fail`)."""
    if ranks().leader:
        print(line, file=sys.stderr)
