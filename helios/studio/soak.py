"""`python -m helios.studio.soak --runs N [--model M] [--resolution HxW] [--out FILE] [app flags]`: the app used for a long time, as careless and hostile
clients use it, to show that nothing it holds keeps growing.

It starts `python app.py` in a fresh folder for Gradio's cache, with sessions released after a few idle seconds and
a small cap on the runs' disk, then makes N runs through the API, cycling through: a full generate, a generate
stopped mid-run, a client that drops its stream mid-run, a continue, a timeline applied mid-run, a bad input, and
two clients at once. After each run it samples the app's process: resident memory, open file descriptors, threads,
GPU memory (where nvidia-smi sees the process) and the disk under Gradio's cache folder.

The rule: after a warm-up of one cycle, the median of each quantity over the last quarter of runs may exceed its
median over the first quarter by at most 5% or one unit, whichever is more. Medians, because a leak moves every
sample after it while a run's passing peak moves one (a continue that holds 50 MiB of frames while it runs, a
thread alive at one sample). Exit status 1 if anything keeps growing.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[2]
GROWTH = 1.05
QUANTITIES = ("rss_mib", "fds", "threads", "gpu_mib", "disk_mib")


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


class App:
    """`python app.py` on a free port with its own Gradio cache folder; a context manager."""

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

    def __enter__(self) -> "App":
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
        used = [float(m) for pid, m in (line.split(",") for line in out.splitlines() if "," in line) if int(pid) == self.process.pid]
        return used[0] if used else None


def Client(url: str, verbose: bool = False):
    """gradio_client's, imported on use: the in-process soak runs where the web packages are not installed."""
    from gradio_client import Client as client

    return client(url, verbose=verbose)


def until_first_segment(job) -> None:
    for update in job:
        if "<th>frames</th><td>33</td>" in str(update[0]):
            return


def generate(app: App) -> None:
    Client(app.url, verbose=False).predict(*app.form(segments=1), api_name="/generate")


def stop_mid_run(app: App) -> None:
    client = Client(app.url, verbose=False)
    job = client.submit(*app.form(segments=4), api_name="/generate")
    until_first_segment(job)
    client.predict(api_name="/stop")
    job.result()


def drop_mid_stream(app: App) -> None:
    """What a closed tab does: join the queue as the page does, read the updates until a segment arrives, open its
    live stream, take a clip, hang up both."""
    import httpx

    config = httpx.get(app.url + "config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "generate")
    session = uuid.uuid4().hex
    httpx.post(app.url + "gradio_api/queue/join",
               json={"data": list(app.form(segments=4)), "fn_index": fn_index, "session_hash": session, "event_data": None})
    with httpx.stream("GET", app.url + "gradio_api/queue/data", params={"session_hash": session}, timeout=120) as stream:
        for line in stream.iter_lines():
            if "process_generating" in line and "frames</th><td>33" in line:
                break
    live = re.search(r'data-live=\\"([^\\"]+)', line).group(1)
    with httpx.stream("GET", app.url + live, timeout=120) as stream:
        next(stream.iter_bytes())
    time.sleep(1)


def continue_a_run(app: App) -> None:
    client = Client(app.url, verbose=False)
    client.predict(*app.form(segments=1), api_name="/generate")
    client.predict(*app.form(segments=1), api_name="/continue")


def apply_timeline_mid_run(app: App) -> None:
    client = Client(app.url, verbose=False)
    job = client.submit(*app.form(segments=3), api_name="/generate")
    until_first_segment(job)
    client.predict({"headers": ["start", "prompt"], "data": [[0, "a lighthouse"], [1, "a storm"]]}, "segments", 0,
                   api_name="/apply_timeline")
    job.result()


def bad_input(app: App) -> None:
    from gradio_client.exceptions import AppError

    client = Client(app.url, verbose=False)
    for args in (app.form(steps="99999,1,1"), app.form(segments="lots"), app.form(prompt=" ")):
        try:
            client.predict(*args, api_name="/generate")
        except AppError:
            continue
        raise AssertionError(f"accepted a bad request: {args}")


def two_clients(app: App) -> None:
    threads = [threading.Thread(target=generate, args=(app,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)


ACTIONS = {f.__name__: f for f in (generate, stop_mid_run, drop_mid_stream, continue_a_run, apply_timeline_mid_run, bad_input, two_clients)}


class InProcess:
    """The same cycle against the page's handlers (`Sessions`) in this process: for a GPU machine without the app's
    web packages (the Compare tab's Gradio players need ffprobe). A dropped stream is a closed updates generator."""

    def __init__(self, engine, workdir: Path, resolution: str):
        from helios.run import warm_up

        from .form import parse_resolution
        from .session_limits import SessionLimits
        from .sessions import Sessions

        self.resolution = resolution
        self.root = workdir / "runs"
        warm_up(engine, *parse_resolution(resolution))
        ready = threading.Event()
        ready.set()
        self.sessions = Sessions(engine, ready, SessionLimits(6.0, int(0.02 * 2**30)), root=self.root)

    def form(self, prompt: str = "a lighthouse at dusk", segments: int = 1, steps: str = "1,1,1"):
        from .form import Form

        return Form([[0, prompt]], "seconds", 1, None, None, segments, steps, 7, self.resolution)

    def sample(self, run: int, action: str, seconds: float) -> Sample:
        import torch

        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        disk = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())
        gpu = torch.cuda.memory_reserved() / 2**20 if torch.cuda.is_available() else None
        return Sample(run, action, round(seconds, 2), round(int(status["VmRSS"].split()[0]) / 1024, 1),
                      len(os.listdir("/proc/self/fd")), int(status["Threads"]), gpu, round(disk / 2**20, 2))


def _session() -> str:
    return uuid.uuid4().hex


def _until_clip(updates) -> None:
    for update in updates:
        if update.clip:
            return


def _in_generate(target: InProcess) -> None:
    list(target.sessions.generate(_session(), target.form())[1])


def _in_stop_mid_run(target: InProcess) -> None:
    session = _session()
    updates = target.sessions.generate(session, target.form(segments=4))[1]
    _until_clip(updates)
    target.sessions.stop(session)
    list(updates)


def _in_drop_mid_stream(target: InProcess) -> None:
    updates = target.sessions.generate(_session(), target.form(segments=4))[1]
    _until_clip(updates)
    updates.close()


def _in_continue_a_run(target: InProcess) -> None:
    session = _session()
    list(target.sessions.generate(session, target.form())[1])
    list(target.sessions.extend(session, target.form()))


def _in_apply_timeline_mid_run(target: InProcess) -> None:
    session = _session()
    updates = target.sessions.generate(session, target.form(segments=3))[1]
    _until_clip(updates)
    target.sessions.apply_timeline(session, [[0, "a lighthouse"], [1, "a storm"]], "segments", 0)
    list(updates)


def _in_bad_input(target: InProcess) -> None:
    from helios.errors import HeliosError

    for form in (target.form(steps="99999,1,1"), target.form(segments="lots"), target.form(prompt=" ")):
        try:
            list(target.sessions.generate(_session(), form)[1])
        except HeliosError:
            continue
        raise AssertionError(f"accepted a bad request: {form}")


def _in_two_clients(target: InProcess) -> None:
    """One after the other, as the app's queue runs them (the engine takes one run at a time)."""
    _in_generate(target)
    _in_generate(target)


IN_PROCESS = {f.__name__.removeprefix("_in_"): f for f in (
    _in_generate, _in_stop_mid_run, _in_drop_mid_stream, _in_continue_a_run, _in_apply_timeline_mid_run, _in_bad_input,
    _in_two_clients,
)}


def soak(app, runs: int, progress=print, actions: dict = ACTIONS, out: Path | None = None, **about) -> list[Sample]:
    """`app`: an App (through its API) or an InProcess (its handlers), with the matching `actions`. With `out`, the
    samples so far and their verdict are rewritten after every run, so a soak cut short still leaves its record."""
    samples = []
    names = list(actions)
    for run in range(runs):
        action = names[run % len(names)]
        start = time.perf_counter()
        actions[action](app)
        samples.append(app.sample(run, action, time.perf_counter() - start))
        progress(json.dumps(asdict(samples[-1])))
        if out:
            record = dict(about, runs=runs, samples=[asdict(s) for s in samples], verdict=growth(samples))
            out.write_text(json.dumps(record, indent=1))
    return samples


def growth(samples: list[Sample]) -> dict[str, dict]:
    """Per quantity: the first and last quarter's medians after one warm-up cycle, and whether it kept growing."""
    measured = samples[len(ACTIONS):]
    quarter = max(len(measured) // 4, 1)
    verdict = {}
    for name in QUANTITIES:
        values = [getattr(s, name) for s in measured]
        if not values or any(v is None for v in values):
            continue
        first, last = statistics.median(values[:quarter]), statistics.median(values[-quarter:])
        verdict[name] = dict(first_quarter_median=first, last_quarter_median=last, grows=last > max(first * GROWTH, first + 1))
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
            from helios.loading import load_model

            target = InProcess(Engine(load_model(args.model)), Path(workdir), args.resolution)
            samples = soak(target, args.runs, actions=IN_PROCESS, out=args.out, **about)
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
