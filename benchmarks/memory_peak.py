"""`python -m benchmarks.memory_peak OUT ARGS...` (ARGS: a `python -m helios generate` command line, on a GPU): what
is on the GPU at the run's peak. PyTorch's memory history records every allocation with its Python stack; the live
allocations at the moment of the most bytes allocated are grouped by where in helios, diffusers or torchao they were
made, largest first, into OUT/memory-peak.txt."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import torch

from helios import cli

OURS = ("/helios/", "diffusers/", "/torchao/")


def where(frames: list[dict]) -> str:
    """The innermost frame of ours or of the libraries, and the two of ours or theirs that called it."""
    picked = [f for f in frames if any(part in f["filename"] for part in OURS)] or frames[:1]
    if not picked:
        return "?"
    first = picked[0]
    name = first["filename"].split("site-packages/")[-1]
    return f"{name}:{first['line']} {first['name']}" + "".join(f" <- {f['name']}:{f['line']}" for f in picked[1:3])


def live_at_peak(trace: list[dict]) -> tuple[int, list[dict]]:
    """The most bytes allocated at once over the trace, and the allocations live at that moment."""
    size, current, peak, peak_at = {}, 0, 0, -1
    for i, event in enumerate(trace):
        if event["action"] == "alloc":
            size[event["addr"]] = event["size"]
            current += event["size"]
            if current > peak:
                peak, peak_at = current, i
        elif event["action"] == "free_completed":
            current -= size.pop(event["addr"], 0)
    live = {}
    for event in trace[: peak_at + 1]:
        if event["action"] == "alloc":
            live[event["addr"]] = event
        elif event["action"] == "free_completed":
            live.pop(event["addr"], None)
    return peak, list(live.values())


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[1:]
    torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
    code = cli.main(["generate", *args])
    trace = torch.cuda.memory._snapshot()["device_traces"][0]
    torch.cuda.memory._record_memory_history(enabled=None)
    stats = torch.cuda.memory_stats()
    peak, live = live_at_peak(trace)
    groups, counts = collections.Counter(), collections.Counter()
    for event in live:
        key = where(event.get("frames", []))
        groups[key] += event["size"]
        counts[key] += 1
    lines = [
        f"exit {code}; {len(trace)} events; peak allocated {peak / 2**30:.2f} GiB; allocator's peak allocated "
        f"{stats['allocated_bytes.all.peak'] / 2**30:.2f} GiB, reserved "
        f"{stats['reserved_bytes.all.peak'] / 2**30:.2f} GiB",
        "GiB      count  made at",
        *(f"{v / 2**30:7.3f}  {counts[k]:5d}  {k}" for k, v in groups.most_common(25)),
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory-peak.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
