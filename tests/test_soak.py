"""The app soaked with a mix of runs, stops, dropped streams, continues, live edits, bad inputs and concurrent
clients: nothing it holds may keep growing. The default run soaks it 40 times on the tiny model at the CPU preview's
64x128 (~3 min on 2 cores); a longer soak: `HELIOS_SOAK_RUNS=300 python -m pytest -m soak tests/test_soak.py`, or
`python -m studio.soak --runs 300`."""

import os

import pytest

from studio.soak import ACTIONS, QUANTITIES, App, Sample, growth, soak


@pytest.mark.soak
def test_memory_threads_descriptors_and_disk_stay_flat(tmp_path):
    runs = int(os.environ.get("HELIOS_SOAK_RUNS", 40))
    with App("tiny", tmp_path, [], "64x128") as app:
        samples = soak(app, runs, progress=lambda line: None)
    verdict = growth(samples)
    assert set(verdict) == {"rss_mib", "fds", "threads", "disk_mib"}, "no GPU here: all but GPU memory"
    assert not [name for name, v in verdict.items() if v["grows"]], verdict
    assert {s.action for s in samples} == set(ACTIONS)


def samples_of(values):
    return [Sample(i, "generate", 1.0, v, 20, 10, None, 1.0) for i, v in enumerate(values)]


def test_the_growth_rule_flags_a_steady_climb_and_not_a_plateau():
    warm_up = [500.0] * len(ACTIONS)
    assert growth(samples_of(warm_up + [800 + 5 * i for i in range(40)]))["rss_mib"]["grows"]
    assert not growth(samples_of(warm_up + [800 + (i % 5) for i in range(40)]))["rss_mib"]["grows"]
    assert set(growth(samples_of(warm_up + [800.0] * 40))) == set(QUANTITIES) - {"gpu_mib"}
    threads = lambda values: growth([Sample(i, "generate", 1.0, 800.0, 20, v, None, 1.0) for i, v in enumerate(values)])["threads"]["grows"]
    assert not threads([10] * 7 + [10] * 39 + [11]), "one more thread at one sample"
    assert threads([10] * 7 + [10] * 20 + [12] * 20)
