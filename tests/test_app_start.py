"""Starting the app with bad flags or a busy port ends in one line naming the flag; listening beyond this machine
warns that anyone who can reach the port can use the GPU."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.app

ROOT = Path(__file__).resolve().parents[1]


def start(*args, timeout=60):
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


BAD_FLAGS = [
    (["--port", "99999"], "argument --port: '99999' is not a port: give a number from 1 to 65535"),
    (["--max-upload", "lots"], "argument --max-upload: 'lots' is not a size: write it like 200mb"),
    (["--host", "999.1.1.1"], "error: --host 999.1.1.1 is not an address of this machine"),
    (["--fp8-linears", "cutlass"], "argument --fp8-linears: invalid choice: 'cutlass'"),
    (["--compare-model", "/nowhere"], "error: --compare-model /nowhere has no model_index.json"),
]


def test_a_bad_flag_ends_the_started_app_in_one_line():
    result = start("--port", "99999")
    assert result.returncode == 2 and BAD_FLAGS[0][1] in result.stderr.strip().splitlines()[-1]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", BAD_FLAGS)
def test_bad_flags_end_in_one_line(args, message, capsys, monkeypatch):
    """In this process (a started app's imports take ~15 s on 2 cores); the model is never loaded for a bad flag."""
    import app

    monkeypatch.setattr(app, "choose_model", lambda *a: pytest.fail("loaded a model despite a bad flag"))
    assert app.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err


def test_a_port_in_use_is_named_before_the_model_loads():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.perf_counter()
        result = start("--port", str(port))
    assert (
        result.returncode == 2 and f"error: port {port} is in use" in result.stderr and "Traceback" not in result.stderr
    )
    assert time.perf_counter() - started < 30


def test_listening_on_every_interface_warns():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--host", "0.0.0.0", "--port", str(port), "--no-warmup"], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait()
    assert line.startswith("warning: listening on 0.0.0.0: anyone who can reach port") and "can use this GPU" in line
