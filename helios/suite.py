"""`python -m helios suite --prompts FILE --config NAME="FLAGS" ... --out DIR`: every prompt of a file under each named
configuration (a set of `generate` flags: another checkpoint, `--fp8`, other steps or seed), each video with its recipe
(`generate --recipe` makes any row again); then one CSV of every measure and a static HTML report.

Configurations run one after another, all prompts each, so each model loads once; a model no later configuration uses
is released once the next one has loaded (so `--fp8` of the same checkpoint is copied from it, not read from disk), or
sooner where the model cache needs its memory for that load. A suite stopped part-way resumes where it stopped: a video
whose recipe is written is done, and the CSV and the report are made anew from the recipes on disk."""

from __future__ import annotations

import argparse
import csv
import shlex
from dataclasses import dataclass
from pathlib import Path

from .arguments import Parser, add_generate_arguments, load_options_from_args, requests_from_args
from .difference import video_difference
from .errors import BadInput
from .limits import FRAMES_PER_SEGMENT
from .measures import columns
from .model_cache import load_model, release
from .recipe import Recipe, sidecar
from .report import write_report
from .video_out import ProgressLine, check_request, make_one, write_csv

NOT_IN_A_CONFIG = ("--prompt", "--timeline", "--recipe", "--out")
"""The suite gives each run its prompt and its file."""


@dataclass(frozen=True)
class Config:
    name: str
    flags: str
    args: argparse.Namespace


def add_suite_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--prompts", type=Path, required=True,
                   help="one prompt per line, or a CSV with a 'prompt' column (and an optional 'id' column)")
    s.add_argument("--config", action="append", required=True, metavar='NAME="FLAGS"',
                   help='a configuration: a name, then generate\'s flags, like fast="--steps 1,1,1" (give several)')
    s.add_argument("--common", default="", metavar='"FLAGS"',
                   help='generate\'s flags every configuration starts from, like "--model tiny --frames 66"')
    s.add_argument("--baseline", metavar="NAME", help="the configuration every other is compared with, frame by frame: "
                   "PSNR and SSIM per segment, and a heat map of where they differ")
    s.add_argument(
        "--out", type=Path, required=True, help="the suite's folder: a folder per configuration, suite.csv, report.html"
    )


def read_prompts(path: Path) -> list[tuple[str, str]]:
    """(id, prompt) pairs: a CSV's `id` and `prompt` columns, or a text file's non-empty lines numbered p001, p002..."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"Cannot read the prompts file {path} ({type(exc).__name__}): give a text or CSV file."
        ) from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "prompt" not in rows[0]:
            raise BadInput(f"{path.name} has no 'prompt' column: give a CSV whose header names one.")
        pairs = [(row.get("id") or f"p{n:03d}", row["prompt"]) for n, row in enumerate(rows, 1)]
    else:
        pairs = [
            (f"p{n:03d}", line.strip()) for n, line in enumerate((ln for ln in text.splitlines() if ln.strip()), 1)
        ]
    if not pairs:
        raise BadInput(f"{path.name} holds no prompt: write one per line.")
    ids = [i for i, _ in pairs]
    if len(set(ids)) != len(ids) or not all(_safe_name(i) for i in ids):
        raise BadInput(f"The ids in {path.name} must be distinct and use letters, digits, '-', '_' or '.' only.")
    empty = [i for i, p in pairs if not p.strip()]
    if empty:
        raise BadInput(f"Prompt {empty[0]} in {path.name} is empty: describe what its video should show.")
    return pairs


def parse_configs(texts: list[str], common: str) -> list[Config]:
    configs = []
    for text in texts:
        name, sep, flags = text.partition("=")
        name = name.strip()
        if not sep or not _safe_name(name):
            raise BadInput(f'--config {text!r}: write a name, "=", then generate\'s flags, like fast="--steps 1,1,1".')
        words = shlex.split(common) + shlex.split(flags)
        given = [w.split("=")[0] for w in words if w.startswith("--")]
        for flag in NOT_IN_A_CONFIG:
            if flag in given:
                raise BadInput(f"--config {name}: {flag} is the suite's to set; leave it out.")
        parser = Parser(prog=f"python -m helios suite --config {name}")
        add_generate_arguments(parser)
        args = parser.parse_args([*words, "--prompt", "-", "--out", f"{name}.mp4"])
        if len(args.seed) > 1 or len(args.steps or [None]) > 1:
            raise BadInput(
                f"--config {name}: one seed and one set of steps each; make a configuration per combination."
            )
        configs.append(Config(name, flags.strip(), args))
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise BadInput("Each --config needs a name of its own.")
    return configs


def run_suite(args) -> int:
    from .engine import Engine

    prompts = read_prompts(args.prompts)
    configs = parse_configs(args.config, args.common)
    if args.baseline is not None and args.baseline not in [c.name for c in configs]:
        raise BadInput(
            f"--baseline {args.baseline} names no --config: give one of {', '.join(c.name for c in configs)}."
        )
    args.out.mkdir(parents=True, exist_ok=True)
    loaded: dict[tuple, object] = {}
    for n, config in enumerate(configs):
        todo = [(pid, prompt) for pid, prompt in prompts if not done(video_of(args.out, config, pid))]
        if todo:
            model = loaded[model_key(config)] = load_model(*model_key(config))
            needed = {model_key(c) for c in configs[n:]}
            for key in [k for k in loaded if k not in needed]:  # after the load: another form is made from it
                release(loaded.pop(key))
            engine = Engine(model)
            print(f"{config.name}: {model.describe()}", flush=True)
        for i, (pid, prompt) in enumerate(prompts, 1):
            video = video_of(args.out, config, pid)
            if (pid, prompt) not in todo:
                print(f"{config.name} {i}/{len(prompts)} {pid}: done before, kept", flush=True)
                continue
            config.args.prompt = prompt
            ((_, request),) = requests_from_args(config.args)
            check_request(engine, request, config.args.engine)
            video.parent.mkdir(exist_ok=True)
            recipe = make_one(engine, request, video, ProgressLine(), config.args.engine)
            t = recipe.timings
            print(
                f"{config.name} {i}/{len(prompts)} {pid}: {t['frames']} frames, {t['overall_fps']:.1f} FPS", flush=True
            )
    for model in loaded.values():
        release(model)
    rows = suite_rows(args.out, prompts, configs, args.baseline)
    write_csv(args.out / "suite.csv", rows)
    write_report(args.out / "report.html", prompts, configs, rows)
    print(f"wrote {len(rows)} videos, their recipes, suite.csv and report.html to {args.out}")
    return 0


def model_key(config: Config) -> tuple:
    """What the model cache knows a model by: its source and load options."""
    args = config.args
    return args.model, load_options_from_args(args, device=args.device, vae_dtype=args.vae_dtype)


def video_of(out: Path, config: Config, prompt_id: str) -> Path:
    return out / config.name / f"{prompt_id}.mp4"


def done(video: Path) -> bool:
    return video.is_file() and sidecar(video).is_file()


def suite_rows(
    out: Path, prompts: list[tuple[str, str]], configs: list[Config], baseline: str | None = None
) -> list[dict]:
    """One row per prompt and configuration, read from the recipes on disk; with a baseline, each other row's PSNR
    and SSIM against the baseline's video of the same prompt (means over segments) and a heat map beside it."""
    rows = []
    for pid, prompt in prompts:
        for config in configs:
            video = video_of(out, config, pid)
            recipe = Recipe.read(sidecar(video))
            t = recipe.timings
            rows.append(dict(
                prompt_id=pid, prompt=prompt, config=config.name, file=str(video.relative_to(out)), model=recipe.model,
                tier=recipe.placement["tier"], fp8=recipe.placement["fp8"],
                loras=" ".join(f"{a['file']}:{a['strength']:g}" for a in recipe.loras), seed=recipe.settings["seed"],
                steps=recipe.settings["pyramid_steps"], frames=t["frames"], elapsed_s=t["elapsed_s"],
                overall_fps=t["overall_fps"], first_frame_s=t["first_frame_s"], peak_gpu_gib=t["peak_gpu_gib"],
                **columns(recipe.measures), **against(out, configs, baseline, config, pid, recipe),
            ))
    return rows


def against(out: Path, configs: list[Config], baseline: str | None, config: Config, pid: str, recipe: Recipe) -> dict:
    if baseline is None:
        return {}
    if config.name == baseline:
        return dict(psnr_vs_baseline=None, ssim_vs_baseline=None)
    base = video_of(out, next(c for c in configs if c.name == baseline), pid)
    segments = [FRAMES_PER_SEGMENT] * -(-recipe.timings["frames"] // FRAMES_PER_SEGMENT)
    difference = video_difference(
        base, video_of(out, config, pid), segments, out / config.name / f"{pid}-vs-{baseline}.mp4"
    )
    finite = [db for db in difference.segment_psnr_db if db != float("inf")]
    return dict(psnr_vs_baseline=round(sum(finite) / len(finite), 2) if finite else float("inf"),
                ssim_vs_baseline=round(sum(difference.segment_ssim) / len(difference.segment_ssim), 4))


def _safe_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_." for c in name) and not name.startswith(".")
