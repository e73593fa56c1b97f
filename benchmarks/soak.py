"""`python -m benchmarks.soak --runs N [--model M] [--resolution HxW] [--in-process] [--out FILE] [app flags]`: the app
used for a long time, as careless and hostile clients use it, to show that nothing it holds keeps growing.

It starts `python app.py` in a fresh folder for Gradio's cache, with sessions released after a few idle seconds and
a small cap on the runs' disk, then makes N runs through the API, cycling through: a full generate, a generate
stopped mid-run, a client that drops its stream mid-run, a continue, a timeline applied mid-run, a bad input, and
two clients at once. After each run it samples the app's process: resident memory, open file descriptors, threads,
GPU memory (where nvidia-smi sees the process) and the disk under Gradio's cache folder.

The rule: after a warm-up of one cycle, the median of each quantity over the last quarter of runs (whole cycles) may
exceed its median over the first quarter by at most 5% or one unit, whichever is more. Medians, because a leak moves
every sample after it while a run's passing peak moves one (a continue that holds 50 MiB of frames while it runs, a
thread alive at one sample). Exit status 1 if anything keeps growing. `--in-process` drives the page's handlers in this
process instead (a GPU machine without the app's web packages; `benchmarks.gpu_soak`): the same actions, each written
once over what both targets can do.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROWTH = 1.05
QUANTITIES = ("rss_mib", "fds", "threads", "gpu_mib", "disk_mib", "objects", "tensor_mib")
FLOOR_MIB_PER_RUN = 3.0
"""The floor rule for resident memory in a short soak: the last quarter's lowest sample may exceed the first quarter's
highest by at most this much per run between the quarters' middles."""


@dataclass(frozen=True)
class Sample:
    run: int
    action: str
    seconds: float
    rss_mib: float
    fds: int
    threads: int
    gpu_mib: float | None
    disk_mib: float
    objects: int | None = None
    """Objects the garbage collector tracks after a collection: in process only."""
    tensor_mib: float | None = None
    """Bytes of every tensor alive after a collection: in process only."""


BAD_INPUTS = (dict(steps="99999,1,1"), dict(segments="lots"), dict(prompt=" "))
EDITED_TIMELINE = [[0, "a lighthouse"], [1, "a storm"]]


class App:
    """`python app.py` on a free port with its own Gradio cache folder, driven through its API; a context manager."""

    def __init__(self, model: str, workdir: Path, extra: list[str], resolution: str):
        self.resolution = resolution
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.cache = workdir / "gradio"
        self.log = workdir / "app.log"
        env = dict(os.environ, GRADIO_TEMP_DIR=str(self.cache), GRADIO_ANALYTICS_ENABLED="False")
        command = [sys.executable, "app.py", "--model", model, "--port", str(self.port),
                   "--session-idle-minutes", "0.1", "--runs-disk-gib", "0.02", *extra]
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def __enter__(self) -> App:
        deadline = time.time() + 600
        while "warm: ready" not in self.log.read_text():
            if self.process.poll() is not None or time.time() > deadline:
                self.process.kill()
                raise RuntimeError(f"the app did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(30)

    def form(self, prompt: str = "a lighthouse at dusk", segments: int = 1, steps: str = "1,1,1"):
        return ({"headers": ["start", "prompt"], "data": [[0, prompt]]}, "seconds", 1, None, None, segments, steps, 7,
                self.resolution, False)

    def start(self, form):
        """A run begun by one client; returns once its first segment is out."""
        client = _client(self.url)
        job = client.submit(*form, api_name="/generate")
        for update in job:
            if "<th>frames</th><td>33</td>" in str(update[0]):
                break
        return client, job

    def finish(self, run) -> None:
        run[1].result()

    def generate(self, form):
        client = _client(self.url)
        client.predict(*form, api_name="/generate")
        return client, None

    def stop(self, run) -> None:
        run[0].predict(api_name="/stop")

    def continue_(self, run, form) -> None:
        run[0].predict(*form, api_name="/continue")

    def apply_timeline(self, run, rows) -> None:
        run[0].predict({"headers": ["start", "prompt"], "data": rows}, "segments", 0, api_name="/apply_timeline")

    def refuses(self, form) -> bool:
        from gradio_client.exceptions import AppError

        try:
            _client(self.url).predict(*form, api_name="/generate")
        except AppError:
            return True
        return False

    def drop_mid_stream(self, form) -> None:
        """What a closed tab does: join the queue as the page does, read the updates until a segment arrives, open its
        live stream, take a clip, hang up both."""
        import httpx

        config = httpx.get(self.url + "config").json()
        fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "generate")
        session = uuid.uuid4().hex
        httpx.post(self.url + "gradio_api/queue/join",
                   json={"data": list(form), "fn_index": fn_index, "session_hash": session, "event_data": None})
        with httpx.stream(
            "GET", self.url + "gradio_api/queue/data", params={"session_hash": session}, timeout=120
        ) as stream:
            for line in stream.iter_lines():
                if "process_generating" in line and "frames</th><td>33" in line:
                    break
        live = re.search(r'data-live=\\"([^\\"]+)', line).group(1)
        with httpx.stream("GET", self.url + live, timeout=120) as stream:
            next(stream.iter_bytes())
        time.sleep(1)

    def two_at_once(self, form) -> None:
        threads = [threading.Thread(target=self.generate, args=(form,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)

    def sample(self, run: int, action: str, seconds: float) -> Sample:
        proc = Path(f"/proc/{self.process.pid}")
        status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
        disk = sum(f.stat().st_size for f in self.cache.rglob("*") if f.is_file())
        return Sample(
            run, action, round(seconds, 2), round(int(status["VmRSS"].split()[0]) / 1024, 1),
            len(os.listdir(proc / "fd")), int(status["Threads"]), self._gpu_mib(), round(disk / 2**20, 2),
        )

    def _gpu_mib(self) -> float | None:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=30,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        used = [float(m) for pid, m in (line.split(",") for line in out.splitlines() if "," in line)
                if int(pid) == self.process.pid]
        return used[0] if used else None


def _client(url: str):
    """gradio_client's, imported on use: the in-process soak runs where the web packages are not installed."""
    from gradio_client import Client

    return Client(url, verbose=False)


class InProcess:
    """The page's handlers (`Sessions`) in this process. A dropped stream is a closed updates generator; two clients
    at once run one after the other, as the app's queue runs them (the engine takes one run at a time). The sessions'
    clock counts runs, not seconds: a session is released after `IDLE_RUNS` runs, however busy the machine is (with a
    wall clock a loaded machine kept fewer sessions, and so less memory, than a quiet one)."""

    IDLE_RUNS = 6

    def __init__(self, engine, workdir: Path, resolution: str):
        from helios.run import warm_up
        from helios.studio.form import parse_resolution
        from helios.studio.sessions import Sessions
        from helios.studio.settings import StudioSettings

        self.resolution = resolution
        self.root = workdir / "runs"
        warm_up(engine, *parse_resolution(resolution))
        ready = threading.Event()
        ready.set()
        self.runs_done = 0
        settings = StudioSettings(self.IDLE_RUNS - 0.5, int(0.02 * 2**30))
        self.sessions = Sessions(engine, ready, settings, clock=lambda: self.runs_done, root=self.root)

    def form(self, prompt: str = "a lighthouse at dusk", segments: int = 1, steps: str = "1,1,1"):
        from helios.studio.form import Form

        return Form([[0, prompt]], "seconds", 1, None, None, segments, steps, 7, self.resolution)

    def start(self, form):
        session = uuid.uuid4().hex
        updates = self.sessions.generate(session, form)[1]
        for update in updates:
            if update.clip:
                break
        return session, updates

    def finish(self, run) -> None:
        list(run[1])

    def generate(self, form):
        session = uuid.uuid4().hex
        list(self.sessions.generate(session, form)[1])
        return session, None

    def stop(self, run) -> None:
        self.sessions.stop(run[0])

    def continue_(self, run, form) -> None:
        list(self.sessions.extend(run[0], form))

    def apply_timeline(self, run, rows) -> None:
        self.sessions.apply_timeline(run[0], rows, "segments", 0)

    def refuses(self, form) -> bool:
        from helios.errors import HeliosError

        try:
            list(self.sessions.generate(uuid.uuid4().hex, form)[1])
        except HeliosError:
            return True
        return False

    def drop_mid_stream(self, form) -> None:
        self.start(form)[1].close()

    def two_at_once(self, form) -> None:
        self.generate(form)
        self.generate(form)

    def sample(self, run: int, action: str, seconds: float) -> Sample:
        import gc

        import torch

        self.runs_done += 1
        gc.collect()
        _trim_heap()
        tracked = gc.get_objects()
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tracked
                    if isinstance(t, torch.Tensor) and not t.is_meta}
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        disk = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())
        gpu = torch.cuda.memory_reserved() / 2**20 if torch.cuda.is_available() else None
        return Sample(run, action, round(seconds, 2), round(int(status["VmRSS"].split()[0]) / 1024, 1),
                      len(os.listdir("/proc/self/fd")), int(status["Threads"]), gpu, round(disk / 2**20, 2),
                      len(tracked), round(sum(storages.values()) / 2**20, 2))


def _trim_heap() -> None:
    """glibc's `malloc_trim(0)`: resident memory is then what the process holds, not what the allocator keeps for
    reuse. Untrimmed, one process's RSS moved between levels ~100 MiB apart from run to run; trimmed, 54 of 63
    samples sat within 3 MiB, the rest in passing bumps of up to 55 MiB (tests/results/README.md)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def generate(target) -> None:
    target.generate(target.form())


def stop_mid_run(target) -> None:
    run = target.start(target.form(segments=4))
    target.stop(run)
    target.finish(run)


def drop_mid_stream(target) -> None:
    target.drop_mid_stream(target.form(segments=4))


def continue_a_run(target) -> None:
    target.continue_(target.generate(target.form()), target.form())


def apply_timeline_mid_run(target) -> None:
    run = target.start(target.form(segments=3))
    target.apply_timeline(run, EDITED_TIMELINE)
    target.finish(run)


def bad_input(target) -> None:
    for bad in BAD_INPUTS:
        if not target.refuses(target.form(**bad)):
            raise AssertionError(f"accepted a bad request: {bad}")


def two_clients(target) -> None:
    target.two_at_once(target.form())


ACTIONS = {f.__name__: f for f in (generate, stop_mid_run, drop_mid_stream, continue_a_run, apply_timeline_mid_run,
                                   bad_input, two_clients)}


def soak(target, runs: int, progress=print, out: Path | None = None, **about) -> list[Sample]:
    """`target`: an App (through its API) or an InProcess (its handlers). With `out`, the samples so far and their
    verdict are rewritten after every run, so a soak cut short still leaves its record."""
    samples = []
    names = list(ACTIONS)
    for run in range(runs):
        action = names[run % len(names)]
        start = time.perf_counter()
        ACTIONS[action](target)
        samples.append(target.sample(run, action, time.perf_counter() - start))
        progress(json.dumps(asdict(samples[-1])))
        if out:
            record = dict(about, runs=runs, samples=[asdict(s) for s in samples], verdict=growth(samples))
            out.write_text(json.dumps(record, indent=1))
    return samples


def growth(samples: list[Sample]) -> dict[str, dict]:
    """Per quantity: the first and last quarter's medians after one warm-up cycle (quarters of whole cycles; one cycle
    each in a soak of under 8 cycles), and whether it kept growing (the medians rule). Resident memory also gets the
    floor rule (`FLOOR_MIB_PER_RUN`), which a short soak can decide:
    one process's RSS moves between allocator levels ~100 MiB apart from run to run (tests/results/README.md), so
    quarters of five runs have unstable medians, but a leak lifts every sample after it, the lowest too."""
    measured = samples[len(ACTIONS):]
    quarter = len(ACTIONS) * max(len(measured) // (4 * len(ACTIONS)), 1)
    """Whole cycles, so both quarters hold the same actions (a continue holds more tensors than a bad input)."""
    verdict = {}
    for name in QUANTITIES:
        values = [getattr(s, name) for s in measured]
        if not values or any(v is None for v in values):
            continue
        first, last = statistics.median(values[:quarter]), statistics.median(values[-quarter:])
        verdict[name] = dict(
            first_quarter_median=first, last_quarter_median=last, grows=last > max(first * GROWTH, first + 1)
        )
    if "rss_mib" in verdict:
        values = [s.rss_mib for s in measured]
        rise = min(values[-quarter:]) - max(values[:quarter])
        verdict["rss_mib"]["floor_grows"] = rise > FLOOR_MIB_PER_RUN * (len(values) - quarter)
    return verdict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--resolution", default="64x128", help="384x640 on a GPU: the size the app warms up at")
    parser.add_argument("--in-process", action="store_true", help="drive the page's handlers here, not the app's API")
    parser.add_argument("--out", type=Path, help="write the samples and the verdict here as JSON")
    args, app_flags = parser.parse_known_args(argv)
    if args.runs < 4 * len(ACTIONS):
        parser.error(f"--runs must be at least {4 * len(ACTIONS)}: one warm-up cycle, then quarters to compare")
    about = dict(model=args.model, resolution=args.resolution, in_process=args.in_process)
    with tempfile.TemporaryDirectory(prefix="helios-soak-") as workdir:
        if args.in_process:
            from helios.engine import Engine
            from helios.model_cache import load_model

            target = InProcess(Engine(load_model(args.model)), Path(workdir), args.resolution)
            samples = soak(target, args.runs, out=args.out, **about)
        else:
            with App(args.model, Path(workdir), app_flags, args.resolution) as app:
                samples = soak(app, args.runs, out=args.out, **about)
    return verdict_of(samples)


def verdict_of(samples: list[Sample]) -> int:
    """Prints the verdict; the exit status: 1 if anything kept growing."""
    verdict = growth(samples)
    print(json.dumps(verdict, indent=1))
    return 1 if any(v["grows"] for v in verdict.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

