"""`python -m helios generate ...`: the engine on the command line, with a live progress line per segment."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import DEFAULT_MODEL
from .errors import BadInput, HeliosError
from .faster.speedups import Speedups
from .fit.tiers import FP8_LINEARS, MEMORY_CHOICES, PARALLEL_CHOICES, TIERS, Placement
from .limits import FRAMES_PER_SEGMENT, parse_steps
from .loading import LoadOptions, load_model
from .measures import columns
from .media import VideoWriter, check_output_path, read_image, read_video
from .parallel.ranks import ranks
from .recipe import Recipe, sidecar
from .record import RunRecord
from .request import GenerationRequest, GenerationSettings
from .run import Run, follow
from .segment import Segment, StepProgress
from .timeline import PromptTimeline, read_timeline
from .weights.form import WeightForm

DEFAULT_FRAMES = 132
"""Four segments; a --timeline without --frames gets at least what it covers (its last entry, faded in)."""


class Parser(argparse.ArgumentParser):
    """A bad flag is a BadInput, which the CLI and the app print as one line, not argparse's usage block."""

    def error(self, message: str):
        raise BadInput(f"{message} (see {self.prog} --help)")


def _steps(text: str) -> tuple[int, ...]:
    try:
        return parse_steps(text)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers separated by commas, like 0,1,2 (got {text!r})") from None


def _gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"give a number of GiB above 0, like 16 (got {text!r})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m helios", description="Helios Studio: streaming Helios video generation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    g = sub.add_parser("generate", help="generate a video")
    g.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local diffusers folder, or 'tiny' (CPU preview)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="one prompt for the whole video")
    src.add_argument("--timeline", type=Path, help="prompt timeline as .json or the official .csv")
    src.add_argument("--recipe", type=Path, help="make a video again from the .json written beside it (with its --image or --video)")
    ctx = g.add_mutually_exclusive_group()
    ctx.add_argument("--image", type=Path, help="start the video from this image (image-to-video)")
    ctx.add_argument("--video", type=Path, help="continue this video (video-to-video)")
    g.add_argument("--height", type=int, default=384)
    g.add_argument("--width", type=int, default=640)
    g.add_argument("--frames", type=int, help="rounded up to whole segments of 33 frames; default 132, or what a --timeline covers")
    g.add_argument("--steps", type=_steps, nargs="+", help="denoising steps per pyramid stage, e.g. 2,2,2 (several: a grid)")
    g.add_argument("--num-inference-steps", type=int, help="steps for the non-pyramid Base model")
    g.add_argument("--guidance", type=float, help="guidance scale (model default if omitted)")
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--seed", type=_seeds, default=(0,), help="e.g. 0, or 0,1,2 for a grid")
    g.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    g.add_argument("--vae-dtype", choices=["float32", "bfloat16"], help="default: bfloat16 on a GPU, float32 on a CPU")
    add_placement_arguments(g)
    g.add_argument("--out", type=Path, required=True,
                   help=".mp4 (H.264, 24 fps) or .npy (uint8 frames); for a grid of seeds x steps, a folder")
    c = sub.add_parser("compile", help="build ahead-of-time compiled blocks, so runs start without compiling")
    c.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local diffusers folder, or 'tiny'")
    c.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    c.add_argument("--height", type=int, default=384, help="the example request's size; every size runs from the package")
    c.add_argument("--width", type=int, default=640)
    add_placement_arguments(c, runs=False)
    c.add_argument("--out", type=Path, help="the folder to write (default: the cache folder runs look in)")
    return parser


def add_placement_arguments(parser: argparse.ArgumentParser, runs: bool = True) -> None:
    """The load options the CLI and the app share; `compile` takes those that decide the block it builds."""
    parser.add_argument("--fp8", action="store_true", help="FP8 transformer weights (FP8 matmuls on Ada/Hopper; faster, less exact)")
    parser.add_argument(
        "--memory", choices=MEMORY_CHOICES, default=os.environ.get("HELIOS_MEMORY", "auto"),
        help="auto picks the fastest tier that fits the GPU's free memory; or force one: "
        + "; ".join(f"{t.name}: {t.serves}" for t in TIERS),
    )
    parser.add_argument("--gpu-memory", type=_gib, metavar="GIB", help="use at most this much GPU memory")
    parser.add_argument("--host-memory", type=_gib, metavar="GIB",
                        help="hold at most this much host memory (default: what the system has available)")
    parser.add_argument("--fp8-linears", choices=FP8_LINEARS, default="torchao",
                        help="whose FP8 linear layers the resident FP8 tiers use: torchao's (faster once compiled) or "
                        "ours (the streamed tiers' own; compared in benchmarks/README.md)")
    if not runs:
        return
    parser.add_argument("--fp8-attention", action="store_true",
                        help="with FP8 matmuls: self-attention's q·k in FP8 too (our Triton kernel; slower than cuDNN on an H100)")
    parser.add_argument("--aot", default=os.environ.get("HELIOS_AOT", "auto"), metavar="DIR",
                        help="ahead-of-time compiled blocks from DIR (made by python -m helios compile), or from a Hub repo id "
                        "holding such a folder; auto: the cache's, if made for this GPU; off: compile just in time")
    parser.add_argument(
        "--parallel", choices=PARALLEL_CHOICES, default="auto",
        help="under torchrun --nproc-per-node N: split attention by heads (ulysses) or by tokens (ring); "
        "auto: Ulysses when N divides the 40 heads",
    )


def load_options_from_args(args, **more) -> LoadOptions:
    placement = Placement(weights=WeightForm(memory=args.memory, fp8=args.fp8, fp8_linears=args.fp8_linears), faster=Speedups(fp8_attention=args.fp8_attention, aot=args.aot), parallel=args.parallel)
    return LoadOptions(placement=placement, gpu_memory_gib=args.gpu_memory, host_memory_gib=args.host_memory, **more)


def requests_from_args(args, recipe: Recipe | None = None) -> list[tuple[str, GenerationRequest]]:
    """One request per combination of --seed and --steps (one for a recipe), each with a name for its file."""
    if recipe is not None:
        size = (recipe.settings["height"], recipe.settings["width"])
        context = dict(
            image=read_image(args.image, size) if args.image else None,
            video=read_video(args.video, size) if args.video else None,
        )
        return [("recipe", recipe.request(**context))]
    if args.prompt is not None:
        if not args.prompt.strip():
            raise BadInput("The prompt is empty: describe what the video should show.")
        timeline = PromptTimeline.single(args.prompt)
    else:
        timeline = read_timeline(args.timeline)
    image = read_image(args.image, (args.height, args.width)) if args.image else None
    video = read_video(args.video, (args.height, args.width)) if args.video else None
    frames = args.frames if args.frames is not None else max(DEFAULT_FRAMES, timeline.covering_segments * FRAMES_PER_SEGMENT)
    requests = []
    for steps in args.steps or [None]:
        for seed in args.seed:
            settings = GenerationSettings(
                height=args.height, width=args.width, num_frames=frames, pyramid_steps=steps,
                num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance,
                negative_prompt=args.negative_prompt, seed=seed,
            )
            name = f"seed{seed}-steps{'-'.join(map(str, steps)) if steps else 'default'}"
            requests.append((name, GenerationRequest(timeline, settings, image=image, video=video)))
    return requests


class ProgressLine:
    """One line per segment on stderr: a bar of denoising steps, then the segment's measured FPS."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.open = False

    def step(self, p: StepProgress) -> None:
        done = self.width * p.step // max(p.steps, 1)
        bar = "#" * done + "." * (self.width - done)
        self.stream.write(f"\rsegment {p.segment + 1}/{p.segments} [{bar}] step {p.step}/{p.steps}")
        self.stream.flush()
        self.open = True

    def close(self) -> None:
        """A run that ends mid-segment ends its line, so what is said next starts a line of its own."""
        if self.open:
            self.stream.write("\n")
            self.open = False

    def segment(self, seg, elapsed: float, frames: int) -> None:
        self.stream.write(
            f"\rsegment {seg.index + 1}/{seg.count} [{'#' * self.width}] {len(seg.frames)} frames, "
            f"{seg.fps:.1f} FPS (overall {frames / elapsed:.1f} FPS)\n"
        )
        self.stream.flush()
        self.open = False


def generate(args) -> int:
    recipe = Recipe.read(args.recipe) if args.recipe is not None else None
    if recipe is not None:
        args.model, args.fp8 = recipe.model, recipe.placement["fp8"]
        switches = recipe.placement["switches"]
        args.fp8_attention = switches.get("faster", switches).get("fp8_attention", False)  # recipes before 0.4: flat
    requests = requests_from_args(args, recipe)
    grid = len(requests) > 1
    if grid and args.out.suffix:
        raise BadInput(f"{len(requests)} runs (seeds x steps) need a folder for --out, not a file name like {args.out.name}.")
    outs = [args.out / f"{name}.mp4" for name, _ in requests] if grid else [check_output_path(args.out)]
    from .engine import Engine

    model = load_model(args.model, load_options_from_args(args, device=args.device, vae_dtype=args.vae_dtype))
    engine = Engine(model)
    if not model.ranks.leader:
        follow(engine)
        return 0
    print(model.describe(), flush=True)
    try:
        code = write_videos(engine, requests, outs, grid, args.out)
    except BaseException as exc:
        model.ranks.fail(exc)  # the followers may be in a collective that now never completes: they end at once
        raise
    model.ranks.dismiss()
    return code


def compile_blocks(args) -> int:
    """Loads the model as a run would (blocks not compiled), runs one block call of a real request to learn its
    inputs, and builds the package that every later run of this GPU, torch and weight form starts from."""
    from .engine import Engine
    from .faster.aot import META, aot_cache, aot_key, build, capture_block_inputs

    if args.out is not None and args.out.exists() and not (args.out / META).is_file():
        raise BadInput(f"--out {args.out} exists and is not an AoT folder: give a new folder (an AoT folder is replaced).")
    placement = Placement(weights=WeightForm(memory=args.memory, fp8=args.fp8, fp8_linears=args.fp8_linears), faster=Speedups(compile_blocks=False, aot="off"))
    options = LoadOptions(args.device, placement=placement, gpu_memory_gib=args.gpu_memory, host_memory_gib=args.host_memory)
    model = load_model(args.model, options)
    settings = GenerationSettings(height=args.height, width=args.width, num_frames=FRAMES_PER_SEGMENT, pyramid_steps=(1, 1, 1))
    request = GenerationRequest(PromptTimeline.single("a compile example"), settings)
    block = model.transformer.blocks[0]
    block = getattr(block, "block", block)
    inputs = capture_block_inputs(block, lambda: next(Run(Engine(model), request).segments()))
    key = aot_key(model.transformer.config, model.dtype, model.fit, model.capabilities)
    out = args.out or aot_cache() / key.name
    print(f"{model.describe()}\ncompiling {type(block).__name__} for {key.name} ...", flush=True)
    seconds = build(block, inputs, key, out)
    where = "runs on this machine find it by themselves" if args.out is None else f"run with --aot {out}"
    print(f"wrote {out} in {seconds:.0f} s: {where}.")
    return 0


def write_videos(engine, requests, outs: list[Path], grid: bool, folder: Path) -> int:
    runs = [Run(engine, request) for _, request in requests]  # every request checked before the first runs
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
    for n, (run, out) in enumerate(zip(runs, outs), 1):
        recipe = make_video(run, out, None if grid else ProgressLine())
        t = recipe.timings
        line = f"{out.name}: {t['frames']} frames in {t['elapsed_s']:.1f} s ({t['overall_fps']:.1f} FPS, first frame {t['first_frame_s']:.2f} s)"
        print(f"run {n}/{len(runs)} {line}" if grid else f"wrote {out} and its recipe {sidecar(out).name}: {line}", flush=True)
        rows.append(dict(file=out.name, seed=recipe.settings["seed"], steps=recipe.settings["pyramid_steps"], **{
            k: t[k] for k in ("frames", "elapsed_s", "overall_fps", "first_frame_s", "peak_gpu_gib")},
            **columns(recipe.measures)))
    if grid:
        write_csv(folder / "runs.csv", rows)
        print(f"wrote {len(rows)} videos, their recipes and runs.csv to {folder}")
    return 0


def make_video(run, out: Path, progress: "ProgressLine | None") -> Recipe:
    """One run into `out` and its recipe beside it; nothing is left behind if it fails."""
    writer = VideoWriter(out)
    record = RunRecord(run)
    try:
        for event in run:
            if isinstance(event, StepProgress) and progress:
                progress.step(event)
            elif isinstance(event, Segment):
                record.on_segment(event)
                writer.add(event.frames)
                if progress:
                    progress.segment(event, time.perf_counter() - record.started, writer.count)
        recipe = record.recipe()
        writer.close(comment=recipe.to_json())
    except BaseException:
        run.cancel()
        writer.abort()
        if progress:
            progress.close()
        raise
    sidecar(out).write_text(recipe.to_json(), encoding="utf-8")
    return recipe


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in row.items()} for row in rows)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return compile_blocks(args) if args.command == "compile" else generate(args)
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
