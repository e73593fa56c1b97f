"""`python -m benchmarks.load_trace --model FOLDER`: where a cold load's seconds go. The page cache is dropped (root
only), then the process imports and loads the model as the CLI does, while a sampler notes every thread's stack every
0.25 s from the process's first line. The summary counts, per thread, the innermost frame in our code and the
innermost frame of all, each sample being a quarter second of that thread's time. `--start` says how the reading
begins (startup.py): `noted`, as the CLI's first line does after a first load, the code files that
load noted, then the checkpoint, from the first line; `installed`, as on a machine's first start (the list
removed), the libraries' installed code, then the checkpoint, from the first line; `load`, as before either, the
checkpoint from when the load has imported the libraries."""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

PERIOD = 0.25


class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True, name="sampler")
        self.samples: list[tuple[float, str, str, str]] = []
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        names = {}
        while not self._halt.wait(PERIOD):
            names.update({t.ident: t.name for t in threading.enumerate()})
            at = time.perf_counter() - START
            for ident, frame in sys._current_frames().items():
                if ident == self.ident:
                    continue
                inner, ours = _where(frame), None
                while frame is not None and ours is None:
                    if "/helios/" in frame.f_code.co_filename or "/benchmarks/" in frame.f_code.co_filename:
                        ours = _where(frame)
                    frame = frame.f_back
                self.samples.append((at, names.get(ident, str(ident)), ours or "-", inner))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _where(frame) -> str:
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, help="writes the summary as JSON")
    parser.add_argument("--start", choices=("noted", "installed", "load"), default="noted")
    args = parser.parse_args()
    sampler = Sampler()
    from benchmarks.first_minute import drop_caches

    dropped = drop_caches()
    from helios.cache import cache_dir
    from helios.startup import CODE_FILES, start_early

    if args.start != "noted":
        (cache_dir() / CODE_FILES).unlink(missing_ok=True)
    if args.start != "load":
        start_early(args.model, cache_dir())
    from helios.loading import LoadOptions, load_model

    imported = time.perf_counter() - START
    model = load_model(args.model, LoadOptions())
    loaded = time.perf_counter() - START
    sampler.stop()
    by_thread = collections.defaultdict(collections.Counter)
    for _, thread, ours, inner in sampler.samples:
        by_thread[thread][f"{ours}  <-  {inner}"] += PERIOD
    summary = dict(page_cache_dropped=dropped, start=args.start, imported_s=round(imported, 2), loaded_s=round(loaded, 2),
                   tier=model.placement.tier.name,
                   threads={t: {w: round(s, 2) for w, s in c.most_common(12)} for t, c in by_thread.items()},
                   timeline=[(round(at, 2), t, o) for at, t, o, _ in sampler.samples if t == "MainThread"][::4])
    print(json.dumps({k: v for k, v in summary.items() if k != "timeline"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
