"""Several ranks on a CPU, as `torchrun --nproc-per-node 2` starts them (gloo), with the tiny Distilled model (its
history-key amplification included), split by our plan on diffusers' hooks with Ulysses attention: the CLI's frames
are one rank's, and the app on two ranks streams, stops, continues and serves the next request. Ring attention needs
an attention backend that returns log-sum-exps (cuDNN, flash): the CPU's native one does not, so ring is left to GPU
runs (`benchmarks/multi_gpu.sh`; benchmarks/README.md says what has been run)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from gradio_client import Client

from benchmarks.random_lora import write_lora
from helios.engine import Engine
from helios.lora.file import LoraFile
from helios.model_cache import load_model
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline

pytestmark = pytest.mark.ranks

pytest.importorskip("diffusers.models._modeling_parallel")
ROOT = Path(__file__).resolve().parents[1]
TIMELINE = "id,prompt_index,prompt,lora:grain\n0,0,a paper boat on a pond,0\n0,1,a paper boat in the rain,1.5\n"
"""Its second segment brings in a LoRA adapter: every rank runs it beside its share of the blocks' work."""


def torchrun(ranks: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
            str(ROOT / "tests" / "ranks_on_cpu.py"), *args]


def test_two_ranks_give_the_frames_of_one(tmp_path):
    model = load_model("tiny")
    assert model.transformer.blocks[0].attn1.is_amplify_history, "the history correction must be exercised"
    (tmp_path / "timeline.csv").write_text(TIMELINE)
    grain = LoraFile.of(write_lora(tmp_path / "grain.safetensors", model.transformer))
    settings = GenerationSettings(height=64, width=128, num_frames=66, pyramid_steps=(1, 1, 1), seed=3)
    request = GenerationRequest(PromptTimeline.from_csv(TIMELINE), settings, loras=(grain,))
    one = np.concatenate([s.frames for s in Run(Engine(model), request).segments()])
    done = subprocess.run(
        torchrun(2, "helios", "generate", "--model", "tiny", "--timeline", "timeline.csv", "--height", "64", "--width",
                 "128", "--frames", "66", "--steps", "1,1,1", "--seed", "3", "--lora", "grain.safetensors", "--out",
                 "two.npy"),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "context parallel: ulysses attention over 2 ranks" in done.stdout
    assert done.stdout.count("wrote two.npy") == 1, "only rank 0 writes"
    two = np.load(tmp_path / "two.npy")
    assert two.shape == one.shape
    assert np.abs(two.astype(int) - one).max() <= 1, "fp32 on the CPU: only the summation order differs"


FORM = ({"headers": ["start", "prompt"], "data": [[0, "a paper boat"]]}, "seconds", 1, None, None)


def start_app(log: Path, **env) -> tuple[subprocess.Popen, Client]:
    """`app.py` on two ranks, warmed up, and a client of its API."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "w") as out:
        app = subprocess.Popen(
            torchrun(2, "app.py", "--port", str(port)),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", **env),
        )
    deadline = time.time() + 240
    while "warm: ready" not in log.read_text():
        if app.poll() is not None or time.time() > deadline:
            app.kill()
            pytest.fail(log.read_text()[-3000:])
        time.sleep(0.5)
    return app, Client(f"http://127.0.0.1:{port}/", verbose=False)


def test_app_on_two_ranks_stops_continues_and_serves_the_next_request(tmp_path):
    log = tmp_path / "app.log"
    app, client = start_app(log)
    try:
        form = FORM
        job = client.submit(*form, 20, "1,1,1", 5, "64x128", False, api_name="/generate")
        for update in job:
            if "<th>frames</th><td>33</td>" in str(update[0]):
                break
        client.predict(api_name="/stop")
        metrics, _, download, _ = job.result()
        stopped = imageio_ffmpeg.count_frames_and_secs(download)[0]
        assert "stopped" in metrics and stopped < 20 * 33
        *_, download, _ = client.predict(*form, 1, "1,1,1", 5, "64x128", False, api_name="/continue")
        assert imageio_ffmpeg.count_frames_and_secs(download)[0] > stopped, "the followers continue from rank 0's state"
        *_, download, _ = client.predict(*form, 1, "1,1,1", 6, "64x128", False, api_name="/generate")
        assert imageio_ffmpeg.count_frames_and_secs(download)[0] == 33, (
            "the followers stopped with rank 0 and follow again"
        )
    finally:
        app.terminate()
        app.wait(30)
    assert log.read_text().count("Running on local URL") == 1, "only rank 0 serves the page"


@pytest.mark.parametrize("failing", [1, 0])
def test_a_failure_on_any_rank_ends_every_rank_with_one_worded_error(tmp_path, failing):
    """Without the failure passing between ranks, the other rank would wait in a collective for gloo's 30 minutes."""
    start = time.monotonic()
    done = subprocess.run(
        torchrun(
            2,
            "helios",
            "generate",
            "--model",
            "tiny",
            "--prompt",
            "a lantern",
            "--height",
            "64",
            "--width",
            "128",
            "--frames",
            "66",
            "--steps",
            "1,1,1",
            "--out",
            "two.npy",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, HELIOS_TEST_FAULT=f"{failing}:4"),
    )
    assert done.returncode != 0 and time.monotonic() - start < 90
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {'rank 1 failed: ' if failing else 'unexpected failure ('}RuntimeError: injected fault"
                      + ("" if failing else "); please report it.")], done.stderr[-3000:]
    assert not (tmp_path / "two.npy").exists()


def test_the_app_on_two_ranks_ends_with_words_when_its_run_fails(tmp_path):
    """A run that fails on rank 0 leaves the followers nothing to follow: every rank ends, the app too."""
    log = tmp_path / "app.log"
    app, client = start_app(log, HELIOS_TEST_FAULT="0:6")  # the warm-up's 3 forward passes, then 3 of the run
    try:
        with pytest.raises(Exception):  # noqa: B017 (the app answers with an error or dies mid-request)
            client.predict(*FORM, 4, "1,1,1", 5, "64x128", False, api_name="/generate")
        app.wait(30)
    finally:
        app.kill()
    assert log.read_text().count("error: rank 0 failed: RuntimeError: injected fault") == 1, log.read_text()[-3000:]
