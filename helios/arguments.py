"""The command line's flags and what they ask for: the load options and the requests of `generate`, which `suite`
takes too (each of its configurations is a set of `generate` flags) and the app shares in part."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import DEFAULT_MODEL
from .errors import BadInput
from .fit.tiers import FP8_LINEARS, MEMORY_CHOICES, PARALLEL_CHOICES, TIERS
from .limits import FRAMES_PER_SEGMENT, parse_steps
from .loading import LoadOptions
from .lora.file import MAX_STRENGTH, LoraFile
from .media import read_image, read_video
from .placement import ATTENTION, Placement, Speedups, WeightForm
from .recipe import Recipe
from .reference import ENGINES
from .request import GenerationRequest, GenerationSettings
from .timeline import PromptTimeline, read_timeline

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
        raise argparse.ArgumentTypeError(
            f"seeds are whole numbers separated by commas, like 0,1,2 (got {text!r})"
        ) from None


def _gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"give a number of GiB above 0, like 16 (got {text!r})")
    return value


def add_generate_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local diffusers folder, or 'tiny' (CPU preview)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="one prompt for the whole video")
    src.add_argument("--timeline", type=Path, help="prompt timeline as .json or the official .csv")
    src.add_argument(
        "--recipe", type=Path, help="make a video again from the .json written beside it (with its --image or --video)"
    )
    ctx = g.add_mutually_exclusive_group()
    ctx.add_argument("--image", type=Path, help="start the video from this image (image-to-video)")
    ctx.add_argument("--video", type=Path, help="continue this video (video-to-video)")
    g.add_argument("--height", type=int, default=384)
    g.add_argument("--width", type=int, default=640)
    g.add_argument(
        "--frames", type=int, help="rounded up to whole segments of 33 frames; default 132, or what a --timeline covers"
    )
    g.add_argument(
        "--steps", type=_steps, nargs="+", help="denoising steps per pyramid stage, e.g. 2,2,2 (several: a grid)"
    )
    g.add_argument("--num-inference-steps", type=int, help="steps for the non-pyramid Base model")
    g.add_argument("--guidance", type=float, help="guidance scale (model default if omitted)")
    g.add_argument("--negative-prompt", default="")
    add_lora_argument(g)
    g.add_argument("--seed", type=_seeds, default=(0,), help="e.g. 0, or 0,1,2 for a grid")
    g.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    g.add_argument("--vae-dtype", choices=["float32", "bfloat16"], help="default: bfloat16 on a GPU, float32 on a CPU")
    g.add_argument(
        "--engine",
        choices=ENGINES,
        default="ours",
        help="which makes the frames: ours, or diffusers' own pipeline on the same loaded weights (one prompt)",
    )
    add_placement_arguments(g)
    g.add_argument("--out", type=Path, required=True,
                   help=".mp4 (H.264, 24 fps) or .npy (uint8 frames); for a grid of seeds x steps, a folder")


def _lora(text: str) -> LoraFile:
    try:
        return LoraFile.parse(text)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_lora_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lora", type=_lora, action="append", default=[], metavar="PATH[:STRENGTH]",
        help="a LoRA adapter (.safetensors; repeatable): named by its file's stem in timelines, at STRENGTH "
        f"(default 1, -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}) wherever the timeline sets none",
    )


def add_placement_arguments(parser: argparse.ArgumentParser, runs: bool = True) -> None:
    """The load options the CLI and the app share; `compile` takes those that decide the block it builds."""
    parser.add_argument(
        "--fp8", action="store_true", help="FP8 transformer weights (FP8 matmuls on Ada/Hopper; faster, less exact)"
    )
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
    parser.add_argument("--attention", choices=list(ATTENTION), default="cudnn",
                        help="the blocks' attention: cudnn (fastest on an H100), native (PyTorch's), flash (where "
                        "flash-attn is installed), or fp8 (with --fp8 on Ada/Hopper: our Triton kernel, q·k in FP8; "
                        "slower than cudnn on an H100); one this machine cannot run falls back to native, said at load")
    parser.add_argument(
        "--aot",
        default=os.environ.get("HELIOS_AOT", "auto"),
        metavar="DIR",
        help="ahead-of-time compiled blocks from DIR (made by python -m helios compile), or from a Hub repo id "
        "holding such a folder; auto: the cache's, if made for this GPU, else built beside the first run (which runs "
        "the blocks uncompiled until it is made); jit: the cache's, else compiled just in time; off: just in time",
    )
    parser.add_argument(
        "--parallel", choices=PARALLEL_CHOICES, default="auto",
        help="under torchrun --nproc-per-node N: split attention by heads (ulysses) or by tokens (ring); "
        "auto: Ulysses when N divides the 40 heads",
    )


def load_options_from_args(args, **more) -> LoadOptions:
    """With LoRA adapters the cache's AoT blocks (made without their layers) are not looked for: blocks compile."""
    weights = WeightForm(memory=args.memory, fp8=args.fp8, fp8_linears=args.fp8_linears)
    aot = "off" if getattr(args, "lora", None) and args.aot in ("auto", "jit") else args.aot
    placement = Placement(weights=weights, faster=Speedups(attention=args.attention, aot=aot), parallel=args.parallel)
    return LoadOptions(placement=placement, gpu_memory_gib=args.gpu_memory, host_memory_gib=args.host_memory, **more)


def requests_from_args(args, recipe: Recipe | None = None) -> list[tuple[str, GenerationRequest]]:
    """One request per combination of --seed and --steps (one for a recipe), each with a name for its file."""
    if recipe is not None:
        size = (recipe.settings["height"], recipe.settings["width"])
        context = dict(
            image=read_image(args.image, size) if args.image else None,
            video=read_video(args.video, size) if args.video else None,
        )
        return [("recipe", recipe.request(**context, loras=tuple(args.lora)))]
    if args.prompt is not None:
        if not args.prompt.strip():
            raise BadInput("The prompt is empty: describe what the video should show.")
        timeline = PromptTimeline.single(args.prompt)
    else:
        timeline = read_timeline(args.timeline)
    image = read_image(args.image, (args.height, args.width)) if args.image else None
    video = read_video(args.video, (args.height, args.width)) if args.video else None
    frames = (
        args.frames if args.frames is not None else max(DEFAULT_FRAMES, timeline.covering_segments * FRAMES_PER_SEGMENT)
    )
    requests = []
    for steps in args.steps or [None]:
        for seed in args.seed:
            settings = GenerationSettings(
                height=args.height, width=args.width, num_frames=frames, pyramid_steps=steps,
                num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance,
                negative_prompt=args.negative_prompt, seed=seed,
            )
            name = f"seed{seed}-steps{'-'.join(map(str, steps)) if steps else 'default'}"
            requests.append(
                (name, GenerationRequest(timeline, settings, image=image, video=video, loras=tuple(args.lora)))
            )
    return requests
