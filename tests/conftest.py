import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HELIOS_STUDIO_CACHE", tempfile.mkdtemp(prefix="helios-cache-"))
os.environ["HF_HUB_OFFLINE"] = "1"
if "PYTEST_XDIST_WORKER" in os.environ:  # two workers on two cores: one compute thread each, and in what they start
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helios.media import VideoWriter  # noqa: E402
from helios.tiny import TinySpec, build_tiny  # noqa: E402

LONGEST_FIRST = ("test_soak.py", "test_context_parallel.py", "test_app_api.py", "test_browser.py", "test_aot.py")
"""Files that take minutes go first, so the two workers of `pytest -n 2 --dist loadfile --no-loadscope-reorder` (which
keeps this order rather than putting the files with the most tests first) end together."""


def pytest_collection_modifyitems(items):
    first = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A function: flavour -> folder of a tiny checkpoint saved with save_pretrained (built once per session)."""
    built: dict[str, Path] = {}

    def get(flavour: str) -> Path:
        if flavour not in built:
            folder = tmp_path_factory.mktemp(f"tiny-{flavour}")
            built[flavour] = build_tiny(folder, TinySpec(flavour=flavour))
        return built[flavour]

    return get


@pytest.fixture(scope="session")
def sample_image() -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))


@pytest.fixture(scope="session")
def sample_video() -> np.ndarray:
    rng = np.random.default_rng(8)
    return rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)


@pytest.fixture
def video_file(tmp_path, sample_video) -> Path:
    path = tmp_path / "clip.mp4"
    with VideoWriter(path) as writer:
        writer.add(sample_video)
    return path


@contextlib.contextmanager
def served_app(script: str, log: Path, *args: str):
    """`python SCRIPT --port P ARGS` (app.py, or a test's stand-in for it), as a user starts it: its URL once it has
    warmed up; stopped after."""
    root = Path(__file__).resolve().parents[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, script, "--port", str(port), *args],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    for expected in (url, "warm: ready"):  # the page is served first, then the engine warms up
        while expected not in log.read_text():
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"app did not start and warm up:\n{log.read_text()}")
            time.sleep(0.5)
    try:
        yield url + "/"
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture(scope="session")
def serve_app():
    return served_app


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """`python app.py` on the tiny preview model, as a user starts it; stopped after the session."""
    with served_app("app.py", tmp_path_factory.mktemp("app") / "app.log", "--max-upload", "2mb") as url:
        yield url


@pytest.fixture(scope="module")
def sessions():
    """The app's session handlers over the tiny engine, without the web server."""
    import threading

    from helios.engine import Engine
    from helios.model_cache import load_model
    from helios.studio.sessions import Sessions

    ready = threading.Event()
    ready.set()
    return Sessions(Engine(load_model("tiny")), ready)


@pytest.fixture(scope="session")
def cli():
    """`python -m helios generate ARGS` (or another `command`) in this process: the exit code, stdout, stderr and
    files a user gets, without a new interpreter's imports (~10 s on 2 cores) per run; test_cli.py also runs the real
    entry point."""
    import io

    from helios.cli import main

    def run(*args, cwd=None, command="generate") -> subprocess.CompletedProcess:
        out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
        try:
            os.chdir(cwd or here)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main([command, *map(str, args)])
        finally:
            os.chdir(here)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    return run
