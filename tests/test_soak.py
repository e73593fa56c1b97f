"""The app soaked with a mix of runs, stops, dropped streams, continues, live edits, bad inputs and concurrent
clients: nothing it holds may keep growing. The default run soaks the page's handlers 28 times in a process of their
own (~2.5 min on 2 cores, tiny model, the CPU preview's 64x128); `python -m pytest -m soak` soaks the app itself
through its API (HELIOS_SOAK_RUNS, default 28, ~2 min: the web layer is where a 300-run soak found the one leak);
longer: `python -m benchmarks.soak --runs 300`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import ACTIONS, QUANTITIES, App, Sample, growth, soak

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("HELIOS_SOAK_RUNS", 28))
"""Four cycles of the seven actions, the fewest the growth rule compares (a warm-up cycle, then quarters)."""


def flat(verdict: dict) -> None:
    assert set(verdict) == {"rss_mib", "fds", "threads", "disk_mib"}, "no GPU here: all but GPU memory"
    assert not [name for name, v in verdict.items() if v["grows"]], verdict


def test_the_pages_handlers_stay_flat(tmp_path):
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--runs", str(RUNS), "--in-process", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    record = json.loads(out.read_text())
    flat(record["verdict"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(record["samples"]) == RUNS and {s["action"] for s in record["samples"]} == set(ACTIONS)


@pytest.mark.soak
def test_the_app_stays_flat_through_its_api(tmp_path):
    with App("tiny", tmp_path, [], "64x128") as app:
        samples = soak(app, RUNS, progress=lambda line: None)
    flat(growth(samples))
    assert {s.action for s in samples} == set(ACTIONS)


def samples_of(values):
    return [Sample(i, "generate", 1.0, v, 20, 10, None, 1.0) for i, v in enumerate(values)]


def test_the_growth_rule_flags_a_steady_climb_and_not_a_plateau():
    warm_up = [500.0] * len(ACTIONS)
    assert growth(samples_of(warm_up + [800 + 5 * i for i in range(40)]))["rss_mib"]["grows"]
    assert not growth(samples_of(warm_up + [800 + (i % 5) for i in range(40)]))["rss_mib"]["grows"]
    assert not growth(samples_of(warm_up + [800.0] * 36 + [850.0] + [800.0] * 3))["rss_mib"]["grows"], "one run's peak"
    assert growth(samples_of(warm_up + [800.0] * 20 + [850.0] * 20))["rss_mib"]["grows"], "a step that stays"
    assert set(growth(samples_of(warm_up + [800.0] * 40))) == set(QUANTITIES) - {"gpu_mib"}
    def threads(values):
        return growth([Sample(i, "generate", 1.0, 800.0, 20, v, None, 1.0) for i, v in enumerate(values)])["threads"]["grows"]
    assert not threads([10] * 7 + [10] * 39 + [11]), "one more thread at one sample"
    assert threads([10] * 7 + [10] * 20 + [12] * 20)
