"""`python -m benchmarks.live_soak --segments 300 [--model tiny] [--resolution 64x128] [--out FILE]`: one live stream
played for N segments in this process, steered every few segments and paused and resumed now and then, as the Live
tab plays it; every 10 segments the process's resident memory, the objects the garbage collector tracks, the bytes of
every live tensor and the recording's disk are sampled. Exit status 1 if any keeps growing: the last third's median
over the first third's by more than 5% or one unit (resident memory: its lowest sample over the first third's highest
by more than 2 MiB per sample between them, as `benchmarks.soak`'s floor rule); the recording must stay within its
quota (`QUOTA`), which it fills in the first ~100 segments at 64x128."""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

QUOTA = 8 * 2**20
PROMPTS = ("a lighthouse at dusk", "a storm over the sea", "a calm harbour at dawn", "fireworks over the bay")


def sample(live) -> dict:
    import torch

    gc.collect()
    tracked = gc.get_objects()
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tracked
                if isinstance(t, torch.Tensor) and not t.is_meta}
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return dict(segments=live.stats.segments, rss_mib=round(int(status["VmRSS"].split()[0]) / 1024, 1),
                objects=len(tracked), tensor_mib=round(sum(storages.values()) / 2**20, 2),
                disk_mib=round(sum(c.stat().st_size for c in live.clips) / 2**20, 2), fps=round(live.stats.fps, 2))


def verdict(samples: list[dict], medians=("objects", "tensor_mib"), floors=("rss_mib",), quota: int = QUOTA) -> dict:
    """`medians` grow when the last third's median tops the first third's by more than 5% or one unit; `floors` (memory
    an allocator holds in steps) when the last third's lowest tops the first third's highest by more than 2 MiB per
    sample between them; the recording's disk must stay within `quota` bytes."""
    third = max(len(samples) // 3, 1)
    out = {}
    for name in medians:
        first = statistics.median(s[name] for s in samples[:third])
        last = statistics.median(s[name] for s in samples[-third:])
        out[name] = dict(first_third=first, last_third=last, grows=last > max(first * 1.05, first + 1))
    for name in floors:
        values = [s[name] for s in samples]
        rise = min(values[-third:]) - max(values[:third])
        out[name] = dict(first_third_max=max(values[:third]), last_third_min=min(values[-third:]),
                         grows=rise > 2.0 * (len(values) - third))
    disk = max(s["disk_mib"] for s in samples)
    out["disk_mib"] = dict(most=disk, quota=quota / 2**20, grows=disk > quota / 2**20)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=300)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--resolution", default="64x128")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from helios.engine import Engine
    from helios.model_cache import load_model
    from helios.run import warm_up
    from helios.studio.form import Form, parse_resolution
    from helios.studio.sessions import Sessions
    from helios.studio.settings import StudioSettings

    engine = Engine(load_model(args.model))
    warm_up(engine, *parse_resolution(args.resolution))
    ready = threading.Event()
    ready.set()
    samples, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="helios-live-soak-") as root:
        sessions = Sessions(engine, ready, StudioSettings(live_recording_bytes=QUOTA), root=Path(root))
        form = Form([[0, PROMPTS[0]]], "segments", 1, None, None, 1, "1,1,1", 7, args.resolution)
        live = sessions.live_start("soak", form, [])
        while live.stats.segments < args.segments:
            for update in live.updates():
                n = live.stats.segments
                if not update.clip:
                    continue
                if n % 7 == 0:
                    live.steer(PROMPTS[n // 7 % len(PROMPTS)], 1)
                if n % 10 == 0:
                    samples.append(sample(live))
                    print(json.dumps(samples[-1]), flush=True)
                if n % 50 == 0 or n >= args.segments:
                    live.pause()
            live.resume()
        result = dict(segments=live.stats.segments, seconds=round(time.perf_counter() - started, 1),
                      resolution=args.resolution, samples=samples, verdict=verdict(samples))
    print(json.dumps(result["verdict"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 1 if any(v["grows"] for v in result["verdict"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
