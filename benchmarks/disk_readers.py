"""`python -m benchmarks.disk_readers --model FOLDER`: how fast the disk gives a checkpoint's files to the read-ahead
(placement/read_ahead.py) with 1, 2, 4, 8 and 16 readers. Each count reads its own stretch of the files in the load's
order, after the page cache is dropped (root only; the stretches differ anyway, so no count finds another's pages),
and its rate is what the load can expect from that many readers: where READERS comes from."""

from __future__ import annotations

import argparse
import json
import time
from itertools import accumulate
from pathlib import Path

from benchmarks.first_minute import drop_caches
from helios.placement.read_ahead import ReadAhead, checkpoint_chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a checkpoint folder in diffusers' layout")
    parser.add_argument("--readers", default="1,2,4,8,16")
    parser.add_argument("--gib-each", type=float, default=4.0, help="how much each count reads")
    parser.add_argument("--out", type=Path, help="appends one JSON line per count")
    args = parser.parse_args()
    chunks = checkpoint_chunks(args.model)
    for readers in (int(n) for n in args.readers.split(",")):
        dropped = drop_caches()
        start = time.perf_counter()
        ahead = ReadAhead(chunks, budget=int(args.gib_each * 2**30), readers=readers)
        ahead.join()
        seconds = time.perf_counter() - start
        row = dict(readers=readers, gb=round(ahead.read / 1e9, 2), s=round(seconds, 2),
                   gb_per_s=round(ahead.read / seconds / 1e9, 2), page_cache_dropped=dropped)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        chunks = chunks[sum(1 for total in accumulate(c.size for c in chunks) if total <= ahead.read):]


if __name__ == "__main__":
    main()
