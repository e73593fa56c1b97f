"""`python -m benchmarks.disk_readers --model FOLDER`: how fast the read-ahead's child process (startup.py)
gets a checkpoint's files from the disk, in the load's order, after the page cache is dropped (root only): the rate a
cold load can expect, against the disk's own (`dd` with O_DIRECT in first_minute.sh)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.first_minute import drop_caches
from benchmarks.json_lines import emit
from helios.startup import ReadAhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a checkpoint folder in diffusers' layout")
    parser.add_argument("--gib", type=float, default=8.0, help="how much to read")
    parser.add_argument("--out", type=Path, help="appends the result as one JSON line")
    args = parser.parse_args()
    dropped = drop_caches()
    start = time.perf_counter()
    read = ReadAhead(str(args.model), budget=int(args.gib * 2**30)).join()
    seconds = time.perf_counter() - start
    row = dict(gb=round(read / 1e9, 2), s=round(seconds, 2), gb_per_s=round(read / seconds / 1e9, 2),
               page_cache_dropped=dropped)
    emit(row, args.out)


if __name__ == "__main__":
    main()
