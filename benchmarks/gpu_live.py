"""`python -m benchmarks.gpu_live --minutes 8 --out FILE`: one live stream on a GPU with full-size random weights built
in GPU memory (as `benchmarks.gpu_soak`), beside Generate at the same settings on the same engine.

Generate's FPS is measured as `benchmarks.bench` measures it (`run_engine`: a 2-segment warm run, then 10 segments,
made-up prompt embeddings). Then one live stream plays for N minutes as the Live tab plays it (`Sessions.live_start`,
every clip encoded and recorded within the disk quota), steered about every 30 s, at a random moment of a segment,
through the text encoder. Each segment's arrival is timed, and each steer's time to the first frames of the segment
it landed on leaving the engine (the browser adds its delivery: `benchmarks.live_latency`); every 10 segments GPU
memory, resident host memory and the session's disk are sampled. Exit status 1 if the last quarter's FPS is more
than 3% below the first's, live FPS more than 2% below Generate's, the median steer past 1.5 segments + 0.5 s, memory
grows (`benchmarks.live_soak.verdict`), or the disk holds more than the recording. `--out` is rewritten after every
sample, so a cut run leaves what it measured."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from helios.limits import FRAMES_PER_SEGMENT
from helios.studio.live_session import LiveState

from .live_soak import PROMPTS, verdict

STEER_EVERY_S = 30.0


def sample(live, start: float) -> dict:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    on_disk = sum(f.stat().st_size for f in live.workdir.rglob("*") if f.is_file())
    return dict(t=round(time.perf_counter() - start, 2), segments=live.stats.segments, frames=live.stats.frames,
                gpu_allocated_mib=round(torch.cuda.memory_allocated() / 2**20, 1) if torch.cuda.is_available() else 0,
                gpu_reserved_mib=round(torch.cuda.memory_reserved() / 2**20, 1) if torch.cuda.is_available() else 0,
                rss_mib=round(int(status["VmRSS"].split()[0]) / 1024, 1), disk_mib=round(on_disk / 2**20, 2),
                recording_mib=round(sum(c.stat().st_size for c in live.clips) / 2**20, 2))


def steer_now_and_then(live, stop: threading.Event) -> None:
    """A steer about every `STEER_EVERY_S`, at a random moment of a segment, as a key press comes: a steer made just
    as a segment comes out waits longest (the next one is already being denoised)."""
    rng = random.Random(0)
    for n in itertools.count(1):
        if stop.wait(STEER_EVERY_S + rng.uniform(0, 2)) or live.state != LiveState.RUNNING:
            return
        live.steer(PROMPTS[n % len(PROMPTS)], 1)


def play(sessions, seconds: float, resolution: str, steps: str, report) -> dict:
    """One live stream for `seconds`, steered from another thread (`steer_now_and_then`); `report(result)` after
    every sample."""
    from helios.studio.form import Form

    form = Form([[0, PROMPTS[0]]], "segments", 1, None, None, 1, steps, 7, resolution)
    live = sessions.live_start("gpu-live", form, [])
    arrivals, samples, stop = [], [], threading.Event()
    start = time.perf_counter()
    steering = threading.Thread(target=steer_now_and_then, args=(live, stop), daemon=True)
    for update in live.updates():
        if not update.clip:
            continue
        arrivals.append((round(time.perf_counter() - start, 3), live.stats.frames))
        if not steering.is_alive() and len(arrivals) == 1:
            steering.start()
        if live.stats.segments % 10 == 0:
            samples.append(sample(live, start))
            report(dict(arrivals=arrivals, samples=samples))
        if arrivals[-1][0] >= seconds:
            stop.set()
            live.pause()
    stop.set()
    recording = live.recording()
    result = dict(arrivals=arrivals, samples=samples, steers=len(live.steers),
                  landed=sum(s.segment is not None for s in live.steers),
                  steer_to_frames_out_s=[round(s.latency_s, 3) for s in live.steers if s.latency_s is not None],
                  recording_mib=round(recording.stat().st_size / 2**20, 2))
    live.close()
    return result


def judged(live: dict, generate_fps: float, quota: int) -> dict:
    """FPS by quarter of the stream's time, from its start to each segment's arrival; memory and disk as above."""
    arrivals, seconds = live["arrivals"], live["arrivals"][-1][0]
    quarters, before = [], (0.0, 0)
    for q in range(1, 5):
        end = max((a for a in arrivals if a[0] <= seconds * q / 4), default=before)
        quarters.append(round((end[1] - before[1]) / (end[0] - before[0]), 3))
        before = end
    fps = arrivals[-1][1] / seconds
    out = verdict(live["samples"], medians=(), floors=("rss_mib", "gpu_allocated_mib", "gpu_reserved_mib"),
                  quota=quota)
    out["quarters_fps"] = dict(fps=quarters, last_over_first=round(quarters[-1] / quarters[0], 4),
                               grows=quarters[-1] < 0.97 * quarters[0])
    out["live_vs_generate"] = dict(live_fps=round(fps, 3), generate_fps=round(generate_fps, 3),
                                   ratio=round(fps / generate_fps, 4), grows=fps < 0.98 * generate_fps)
    if live["steer_to_frames_out_s"]:
        segment_s = FRAMES_PER_SEGMENT / fps
        median = statistics.median(live["steer_to_frames_out_s"])
        out["steer_latency"] = dict(median_s=round(median, 3), segment_s=round(segment_s, 3),
                                    budget_s=round(1.5 * segment_s + 0.5, 3), grows=median > 1.5 * segment_s + 0.5)
    extra = max(s["disk_mib"] - s["recording_mib"] for s in live["samples"])
    out["disk_beside_recording_mib"] = dict(most=extra, grows=extra > 0)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--resolution", default="384x640")
    parser.add_argument("--steps", default="1,1,1", help="the live stream's and Generate's steps")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("error: the GPU live run needs a CUDA GPU; on a CPU run python -m benchmarks.live_soak.")
    from helios.engine import Engine
    from helios.limits import parse_steps
    from helios.placement import Placement, WeightForm
    from helios.studio.sessions import Sessions
    from helios.studio.settings import StudioSettings

    from .bench import build_transformer, build_vae, place, run_engine
    from .random_checkpoint import build_text_encoder

    device = torch.device("cuda", torch.cuda.current_device())
    parts = dict(transformer=build_transformer(device), vae=build_vae(device, torch.bfloat16), text_encoder=None)
    model = place(parts, Placement(weights=WeightForm(memory="resident")), device)
    model.text_encoder = build_text_encoder(device)  # after the fit, which counts the transformer and VAE alone
    engine = Engine(model)
    engine.prompts.remember("benchmark", torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16) * 0.1)
    steps = parse_steps(args.steps)
    result = dict(gpu=torch.cuda.get_device_name(), steps=list(steps), resolution=args.resolution,
                  placement=str(engine.model.fit.placement))
    run_engine(engine, steps, 2)
    generate = run_engine(engine, steps, 10)
    result["generate"] = dict(generate, fps=round(generate["frames"] / generate["wall_s"], 3))
    print(json.dumps(result), flush=True)

    def report(live: dict) -> None:
        args.out.write_text(json.dumps(dict(result, live=live)))
        print(json.dumps(live["samples"][-1]), flush=True)

    settings = StudioSettings()
    with tempfile.TemporaryDirectory(prefix="helios-gpu-live-") as root:
        ready = threading.Event()
        ready.set()
        sessions = Sessions(engine, ready, settings, root=Path(root))
        result["live"] = play(sessions, args.minutes * 60, args.resolution, args.steps, report)
    result["verdict"] = judged(result["live"], result["generate"]["fps"], settings.live_recording_bytes)
    args.out.write_text(json.dumps(result))
    print(json.dumps(result["verdict"], indent=1))
    return 1 if any(v["grows"] for v in result["verdict"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
