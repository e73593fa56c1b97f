"""`python -m benchmarks.first_minute --model FOLDER`: the first minute as a new user meets it. Each case is a fresh
`python -m helios generate` process (the CLI a user runs) on a checkpoint folder, timed from its start: load (the
banner line), first frame (and the first segment's denoise and decode, against a later segment's time, which say
where a cold start's extra seconds go), the whole video, steady FPS, host memory peak (the process's ru_maxrss), GPU
peak, and bytes over the host link. Cold cases start from an empty compile cache; kept cases reuse the cold case's.
diffusers' pipeline loads the same folder in a process of its own (its load, first segment, whole video), in the same
session.

`--drop-caches` empties the page cache before each case (root only), so the load reads the disk, as after a reboot.
One JSON line per case as it ends (and appended to --out); a markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.json_lines import emit
from helios.startup import CODE_FILES

PROMPT = "A red fox walks through fresh snow at dawn"


@dataclass(frozen=True)
class Case:
    name: str
    flags: tuple[str, ...] = ()
    cache: str = ""
    """Cases naming the same cache share it: the first of them starts it empty."""
    env: dict = field(default_factory=dict)
    aot: bool = False
    """Builds the AoT folder first (`python -m helios compile`, timed), then runs from it with no JIT cache left. A case
    without it that names an AoT case's cache runs from that case's folder, with what its run left cached."""


JIT = ("--aot", "jit")
CASES = {
    "bf16-first": Case("bf16, a machine's first start: no AoT folder, empty caches (--aot auto: blocks uncompiled "
                       "until their package, built beside, is made)", cache="first-bf16"),
    "bf16-first-again": Case("bf16, the start after it, from the package the first start built", cache="first-bf16"),
    "fp8-first": Case("--fp8, a machine's first start (as bf16-first)", ("--fp8",), "first-fp8"),
    "bf16-cold": Case("bf16, JIT, empty compile cache", JIT, cache="bf16"),
    "bf16-kept": Case("bf16, JIT, compile cache kept", JIT, cache="bf16"),
    "fp8-cold": Case(
        "--fp8, JIT, empty compile cache", ("--fp8", *JIT), "fp8", {"TORCH_LOGS": "recompiles,graph_breaks"}
    ),
    "fp8-ours-cold": Case(
        "--fp8 --fp8-linears ours, JIT, empty compile cache",
        ("--fp8", "--fp8-linears", "ours", *JIT),
        "fp8-ours",
        {"TORCH_LOGS": "recompiles,graph_breaks"},
    ),
    "fp8-kept": Case("--fp8, JIT, compile cache kept", ("--fp8", *JIT), "fp8"),
    "aot-bf16": Case("bf16, AoT blocks, no JIT cache", cache="aot-bf16", aot=True),
    "aot-fp8": Case("--fp8, AoT blocks and the saved FP8 form (both from helios compile --fp8), no JIT cache",
                    ("--fp8",), "aot-fp8", aot=True),
    "aot-bf16-again": Case("bf16, AoT blocks, a second start (the first's Triton cache kept)", cache="aot-bf16"),
    "40gib": Case("40 GiB GPU", ("--gpu-memory", "40", *JIT), "tiers"),
    "32gib": Case("32 GiB GPU", ("--gpu-memory", "32", *JIT), "tiers"),
    "24gib": Case(
        "24 GiB GPU (the fp8 tier: after fp8-cold, its compile cache kept)", ("--gpu-memory", "24", *JIT), "fp8"
    ),
    "16gib": Case("16 GiB GPU, 24 GiB host", ("--gpu-memory", "16", "--host-memory", "24", *JIT), "streamed"),
    "12gib": Case("12 GiB GPU, 24 GiB host", ("--gpu-memory", "12", "--host-memory", "24", *JIT), "streamed"),
    "8gib": Case("8 GiB GPU, 24 GiB host", ("--gpu-memory", "8", "--host-memory", "24", *JIT), "streamed"),
    "6gib": Case(
        "6 GiB GPU, 24 GiB host, 256x448 (the largest size the tier takes on such a card)",
        ("--gpu-memory", "6", "--host-memory", "24", "--height", "256", "--width", "448", *JIT),
        "streamed",
    ),
    "zerogpu-eager": Case(
        "ZeroGPU's code path (SPACES_ZERO_GPU: no runtime compile, no CUDA graphs)",
        cache="zerogpu",
        env={"SPACES_ZERO_GPU": "1"},
    ),
    "zerogpu-aot": Case(
        "ZeroGPU's code path with AoT blocks", cache="zerogpu-aot", env={"SPACES_ZERO_GPU": "1"}, aot=True
    ),
    "zerogpu-aot-kept": Case(
        "ZeroGPU's code path with the aot-bf16 case's AoT blocks and Triton cache",
        cache="aot-bf16",
        env={"SPACES_ZERO_GPU": "1"},
    ),
    "diffusers": Case("diffusers HeliosPyramidPipeline from the same folder (eager, fp32 VAE)"),
}


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run_timed(command: list[str], env: dict, log: Path) -> tuple[list[tuple[float, str]], int, float, float]:
    """Runs `command`, stamping each stdout line with seconds since start; returns the lines, the exit code, the
    wall time and the process's host memory peak in GiB (its own rusage, not its siblings'). The stamped lines go
    to the log too, beside stderr, so that a case cut by a time limit still says how far it came."""
    start = time.perf_counter()
    lines = []
    with open(log, "w", buffering=1) as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        for line in proc.stdout:
            lines.append((time.perf_counter() - start, line.rstrip()))
            err.write(f"[{lines[-1][0]:.1f} s] {lines[-1][1]}\n")
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return lines, proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 2**20


def ours(case: Case, model: str, segments: int, work: Path, logs: Path, key: str, suffix: str, drop: bool) -> dict:
    cache = work / f"cache-{case.cache}"
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        HELIOS_STUDIO_CACHE=str(cache),
        TRITON_CACHE_DIR=str(cache / "triton"),
        **case.env,
    )
    cold = not cache.exists()
    out = work / f"{key}.{suffix}"
    built = build_aot(case, model, env, cache, logs / f"{key}.compile.log", drop) if case.aot else {}
    if built.get("error"):
        return dict(case=case.name, key=key, **built)
    command = [sys.executable, "-m", "helios", "generate", "--model", model, "--prompt", PROMPT, "--frames",
               str(33 * segments), "--steps", "2,2,2", "--out", str(out), *case.flags]
    lines, code, wall, host = run_timed(command, env, logs / f"{key}.stderr.log")
    result = dict(
        case=case.name,
        key=key,
        cold_cache=cold,
        exit_code=code,
        wall_s=round(wall, 1),
        host_peak_gib=round(host, 1),
        **built,
        **awaited_build(cache, wall),
    )
    banner = next(((t, line) for t, line in lines if line.startswith("Model:")), None)
    if code or banner is None:
        return dict(result, error=(Path(logs / f"{key}.stderr.log").read_text()[-600:]))
    recipe = json.loads(out.with_suffix(".json").read_text())
    timings = recipe["timings"]
    later = [s["fps"] for s in timings["segments"][2:]] or [s["fps"] for s in timings["segments"]]
    wrote = next(t for t, line in lines if line.startswith("wrote"))
    first = timings["segments"][0]
    return dict(
        result,
        banner=banner[1],
        load_s=round(banner[0], 1),
        first_frame_s=round(banner[0] + timings["first_frame_s"], 1),
        first_frame_after_load_s=timings["first_frame_s"],
        first_segment_denoise_s=first["denoise_s"],
        first_segment_decode_s=first["decode_s"],
        later_segment_s=round(33 / statistics.median(later), 2),
        video_s=round(wrote, 1),
        steady_fps=round(statistics.median(later), 2),
        frames=timings["frames"],
        peak_gpu_gib=timings["peak_gpu_gib"],
        host_link_gib=timings.get("host_link_gib"),
    )


def awaited_build(cache: Path, wall: float, limit_s: float = 900) -> dict:
    """A first start's package, built beside its run (helios/aot_beside.py), awaited after the run so the next
    case meets the machine that start left; its seconds since that run's start."""
    start = time.perf_counter()
    building = list((cache / "aot").glob(".*.building"))
    if not building:
        return {}
    while any(b.exists() for b in building) and time.perf_counter() - start < limit_s:
        time.sleep(1)
    made = [p.name for p in (cache / "aot").iterdir() if not p.name.startswith(".")]
    return dict(beside_build_done_s=round(wall + time.perf_counter() - start, 1), beside_built=made)


def build_aot(case: Case, model: str, env: dict, cache: Path, log: Path, drop: bool) -> dict:
    """The AoT folder for this case's flags, built into the case's cache; then the JIT caches and the list of code
    files to read ahead are removed (and the page cache emptied, with --drop-caches), so the run meets a machine that
    has the folder and nothing else. A second start (`aot-bf16-again`) finds the list its first start left."""
    command = [sys.executable, "-m", "helios", "compile", "--model", model, *case.flags]
    lines, code, wall, _ = run_timed(command, env, log)
    if code:
        return dict(error=log.read_text()[-600:], aot_build_exit_code=code)
    for name in ("inductor", "triton"):
        shutil.rmtree(cache / name, ignore_errors=True)
    (cache / CODE_FILES).unlink(missing_ok=True)
    if drop:
        drop_caches()
    return dict(aot_build_s=round(wall, 1), aot_build=lines[-1][1] if lines else "")


def diffusers(model: str, segments: int, logs: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.first_minute", "--diffusers-child", model, "--segments", str(segments)]
    lines, code, wall, host = run_timed(command, dict(os.environ, PYTHONUNBUFFERED="1"), logs / "diffusers.stderr.log")
    stamps = {line.split()[0]: (t, line) for t, line in lines}
    result = dict(
        case=CASES["diffusers"].name,
        key="diffusers",
        exit_code=code,
        wall_s=round(wall, 1),
        host_peak_gib=round(host, 1),
    )
    if code or "video" not in stamps:
        return dict(result, error=(logs / "diffusers.stderr.log").read_text()[-600:])
    first, video = (float(stamps[k][1].split()[1]) for k in ("first", "video"))
    return dict(result, load_s=round(stamps["loaded"][0], 1), first_segment_after_load_s=round(first, 1),
                video_after_load_s=round(video, 1), first_frame_s=round(stamps["loaded"][0] + first, 1),
                video_s=round(stamps["loaded"][0] + first + video, 1), steady_fps=round(33 * segments / video, 2))


def diffusers_child(model: str, segments: int) -> None:
    """diffusers' pipeline as its model card loads it (bf16, the VAE in fp32), a one-segment video then the whole."""
    import torch
    from diffusers import AutoencoderKLWan, HeliosPyramidPipeline

    vae = AutoencoderKLWan.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32)
    pipe = HeliosPyramidPipeline.from_pretrained(model, vae=vae, torch_dtype=torch.bfloat16).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    print("loaded", flush=True)
    for name, count in (("first", 1), ("video", segments)):
        torch.cuda.synchronize()
        start = time.perf_counter()
        pipe(prompt=PROMPT, height=384, width=640, num_frames=33 * count, guidance_scale=1.0,
             pyramid_num_inference_steps_list=[2, 2, 2], is_amplify_first_chunk=True,
             generator=torch.Generator("cuda").manual_seed(0), output_type="np")
        torch.cuda.synchronize()
        print(name, round(time.perf_counter() - start, 2), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a checkpoint folder (python -m benchmarks.random_checkpoint FOLDER)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, in order, of {', '.join(CASES)}")
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--drop-caches", action="store_true")
    parser.add_argument(
        "--video-format", choices=("mp4", "npy"), default="mp4", help="npy where the machine has no FFmpeg"
    )
    parser.add_argument("--work", type=Path, help="folder for caches and videos (default: a fresh temporary one)")
    parser.add_argument("--logs", type=Path, default=Path("."), help="each case's stderr goes here")
    parser.add_argument("--out", type=Path, help="append one JSON line per case here")
    parser.add_argument("--diffusers-child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.diffusers_child:
        diffusers_child(args.diffusers_child, args.segments)
        return 0
    if not args.model:
        parser.error("give --model FOLDER")
    work = args.work or Path(tempfile.mkdtemp(prefix="first-minute-"))
    work.mkdir(parents=True, exist_ok=True)
    args.logs.mkdir(parents=True, exist_ok=True)
    results = []
    for key in args.cases.split(","):
        dropped = drop_caches() if args.drop_caches else False
        if key == "diffusers":
            result = diffusers(args.model, args.segments, args.logs)
        else:
            result = ours(
                CASES[key], args.model, args.segments, work, args.logs, key, args.video_format, args.drop_caches
            )
        result["page_cache_dropped"] = dropped
        results.append(result)
        emit(result, args.out)
    print(
        "\n| case | load s | first frame s (from start) | whole video s | steady FPS | host peak GiB | GPU peak GiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['case']} | {r.get('load_s')} | {r.get('first_frame_s')} | {r.get('video_s')} | "
            f"{r.get('steady_fps')} | "
            f"{r.get('host_peak_gib')} | {r.get('peak_gpu_gib')} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
