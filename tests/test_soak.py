"""The app soaked with a mix of runs, stops, dropped streams, continues, live edits, bad inputs and concurrent
clients: nothing it holds may keep growing. The default run soaks the page's handlers 28 times in a process of their
own (~1 min on 2 cores, tiny model, the CPU preview's 64x128) and decides what 28 runs can: the objects and tensors
the process holds, its descriptors, threads and files (medians rule), and its resident memory after `malloc_trim`
by the floor rule (a leak of ~5 MiB a run or more); `python -m pytest -m soak` soaks the app itself through its API
(HELIOS_SOAK_RUNS, default 28, ~2 min). Smaller leaks of resident memory are the 300-run soaks' to find:
`python -m benchmarks.soak --runs 300 [--in-process]` (tests/results/)."""

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


def flat(verdict: dict, measured: set[str]) -> None:
    assert set(verdict) == measured, "no GPU here: all but GPU memory"
    assert not verdict["rss_mib"]["floor_grows"], verdict
    assert not [name for name, v in verdict.items() if v["grows"] and name != "rss_mib"], verdict


@pytest.mark.slow
def test_the_pages_handlers_stay_flat(tmp_path):
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--runs", str(RUNS), "--in-process", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    record = json.loads(out.read_text())
    flat(record["verdict"], {"rss_mib", "fds", "threads", "disk_mib", "objects", "tensor_mib"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(record["samples"]) == RUNS and {s["action"] for s in record["samples"]} == set(ACTIONS)


@pytest.mark.soak
def test_the_app_stays_flat_through_its_api(tmp_path):
    with App("tiny", tmp_path, [], "64x128") as app:
        samples = soak(app, RUNS, progress=lambda line: None)
    flat(growth(samples), {"rss_mib", "fds", "threads", "disk_mib"})
    assert {s.action for s in samples} == set(ACTIONS)


def samples_of(values):
    return [Sample(i, "generate", 1.0, v, 20, 10, None, 1.0) for i, v in enumerate(values)]


def test_the_floor_rule_flags_a_leak_a_short_soak_can_see_and_not_allocator_levels():
    """Resident memory in a short soak: allocator levels visited at random (as measured, tests/results/) are no
    leak; 15 MiB a run is."""
    warm_up = [650.0] * len(ACTIONS)
    levels = [619.0, 646.0, 660.0, 673.0, 712.0]
    assert not growth(samples_of(warm_up + [levels[(7 * i) % 5] for i in range(21)]))["rss_mib"]["floor_grows"]
    assert not growth(samples_of(warm_up + [646.0] * 5 + [673.0] * 11 + [712.0, 660.0, 712.0, 712.0, 712.0]))[
        "rss_mib"
    ]["floor_grows"]
    assert growth(samples_of(warm_up + [15.0 * i + levels[i % 5] for i in range(21)]))["rss_mib"]["floor_grows"]


def test_the_growth_rule_flags_a_steady_climb_and_not_a_plateau():
    warm_up = [500.0] * len(ACTIONS)
    assert growth(samples_of(warm_up + [800 + 5 * i for i in range(40)]))["rss_mib"]["grows"]
    assert not growth(samples_of(warm_up + [800 + (i % 5) for i in range(40)]))["rss_mib"]["grows"]
    assert not growth(samples_of(warm_up + [800.0] * 36 + [850.0] + [800.0] * 3))["rss_mib"]["grows"], "one run's peak"
    assert growth(samples_of(warm_up + [800.0] * 20 + [850.0] * 20))["rss_mib"]["grows"], "a step that stays"
    assert set(growth(samples_of(warm_up + [800.0] * 40))) == set(QUANTITIES) - {"gpu_mib", "objects", "tensor_mib"}
    def threads(values):
        return growth([Sample(i, "generate", 1.0, 800.0, 20, v, None, 1.0) for i, v in enumerate(values)])["threads"][
            "grows"
        ]

    assert not threads([10] * 7 + [10] * 39 + [11]), "one more thread at one sample"
    assert threads([10] * 7 + [10] * 20 + [12] * 20)
