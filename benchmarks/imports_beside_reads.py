"""`python -m benchmarks.imports_beside_reads --model FOLDER`: how the library imports of a cold start and the
read-ahead's reads of the checkpoint share one disk, by the read-ahead's I/O class. Each variant starts from a dropped
page cache (root only) and times, in a fresh process, the imports a load makes (`loading._import_libraries`), then
says when both the imports and the read-ahead were done (`ready_s`: what a load waits for before it copies weights
from the page cache):

- `after`: the imports alone, then the read-ahead (the order of a first start, and of the load trace's plain run);
- `beside`: the read-ahead from the first line, in the I/O class it starts in (startup.py), with
  `--code-list` reading the code files the last load noted first, as the CLI's start does;
- `beside-best-effort` / `beside-idle`: the same, its child moved to that class with `ionice` (Linux; the disk's
  scheduler must honour classes: `mq-deadline` and `bfq` do, `none` does not).

One JSON line per variant and run."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.first_minute import drop_caches
from benchmarks.json_lines import emit
from helios.cache import cache_dir
from helios.startup import CODE_FILES, ReadAhead

IMPORTS = "from helios.loading import _import_libraries; _import_libraries()"
CLASSES = {"beside-best-effort": ["-c", "2", "-n", "4"], "beside-idle": ["-c", "3"]}


def imports() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)
    return time.perf_counter() - start


def variant(name: str, model: Path, budget: int, code_list: Path | None) -> dict:
    dropped = drop_caches()
    start = time.perf_counter()
    if name == "after":
        imported = imports()
        read = ReadAhead(str(model), budget=budget).join()
    else:
        ahead = ReadAhead(str(model), code_list, budget=budget)
        if name in CLASSES:
            subprocess.run(["ionice", *CLASSES[name], "-p", str(ahead.pid)], check=True)
        imported = imports()
        read = ahead.join()
    ready = time.perf_counter() - start
    return dict(variant=name, imports_s=round(imported, 2), ready_s=round(ready, 2), gb_read=round(read / 1e9, 2),
                page_cache_dropped=dropped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a checkpoint folder in diffusers' layout")
    parser.add_argument("--gib", type=float, default=16.0, help="how much of it the read-ahead reads")
    parser.add_argument("--variants", default="after,beside,beside-best-effort,beside-idle")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--code-list", action="store_true",
                        help="the read-ahead reads the code files the last load noted first, as the CLI's start does")
    parser.add_argument("--out", type=Path, help="appends the JSON lines")
    args = parser.parse_args()
    for _ in range(args.runs):
        for name in args.variants.split(","):
            code_list = cache_dir() / CODE_FILES if args.code_list else None
            row = variant(name, args.model, int(args.gib * 2**30), code_list)
            emit(row, args.out)


if __name__ == "__main__":
    main()
