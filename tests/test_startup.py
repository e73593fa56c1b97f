"""A child process reads the code files the last start used, then the checkpoint, into the page cache in about the
order the load takes them, up to a budget, from a start's first line until the load ends, and never outlives it."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helios import loading, read_ahead, startup
from helios.loading import LoadOptions, load_checkpoint
from helios.read_ahead import CHUNK, checkpoint_chunks, chunks_of, code_paths, read_chunks
from helios.startup import CODE_FILES, ReadAhead, model_named, read_ahead_from_here


def _files(tmp_path, sizes):
    files = []
    for i, size in enumerate(sizes):
        files.append(tmp_path / f"{i}.safetensors")
        files[-1].write_bytes(bytes([i]) * size)
    return files


@pytest.fixture
def endless():
    """A checkpoint folder whose transformer is a terabyte of holes in memory: reading it costs no disk and no memory,
    and takes long enough that only a stop ends it."""
    if not Path("/dev/shm").is_dir():
        pytest.skip("needs /dev/shm")
    folder = Path(tempfile.mkdtemp(dir="/dev/shm"))
    (folder / "model_index.json").write_text("{}")
    (folder / "transformer").mkdir()
    with open(folder / "transformer" / "holes.safetensors", "wb") as f:
        f.truncate(2**40)
    yield folder
    shutil.rmtree(folder)


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_it_reads_every_byte_once_in_order_up_to_the_budget(tmp_path, monkeypatch):
    files = _files(tmp_path, [3 * CHUNK + 5, CHUNK, 7])
    chunks = [c for f in files for c in chunks_of(f)]
    assert [(c.offset, c.size) for c in chunks_of(files[0])] == [(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, CHUNK),
                                                                (3 * CHUNK, 5)]
    read = []

    class Watched(io.FileIO):
        def seek(self, offset, whence=0):
            self.at = offset
            return super().seek(offset, whence)

        def readinto(self, buffer):
            read.append((Path(self.name).name, self.at, len(buffer)))
            return super().readinto(buffer)

    monkeypatch.setattr(read_ahead, "open", lambda file, mode, buffering: Watched(file), raising=False)
    assert read_chunks(chunks, 2**40, lambda: False) == sum(f.stat().st_size for f in files)
    assert read == [(c.file.name, c.offset, c.size) for c in chunks]
    read.clear()
    assert read_chunks(chunks, 2 * CHUNK, lambda: False) == 2 * CHUNK and len(read) == 2
    assert read_chunks(chunks, 2**40, lambda: True) == 0


def test_the_transformer_and_text_encoder_are_read_side_by_side_after_the_vae(tmp_path):
    for part, size in (("vae", CHUNK), ("transformer", 6 * CHUNK), ("text_encoder", 2 * CHUNK)):
        (tmp_path / part).mkdir()
        (tmp_path / part / "a.safetensors").write_bytes(b"\0" * size)
    order = [c.file.parent.name for c in checkpoint_chunks(tmp_path)]
    assert order[0] == "vae" and len(order) == 9
    assert order[1:5].count("text_encoder") == 1 and order[5:].count("text_encoder") == 1


def test_the_child_reads_the_code_files_then_the_checkpoint_and_says_how_much(tiny_checkpoint, tmp_path):
    folder = tiny_checkpoint("distilled")
    kept, gone = _files(tmp_path, [CHUNK + 3]), tmp_path / "gone.pyc"
    (tmp_path / CODE_FILES).write_text(f"{gone}\n{kept[0]}\n{tmp_path}")
    assert code_paths(tmp_path / "never-loaded" / CODE_FILES) == []
    weights = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
    assert ReadAhead(str(folder), tmp_path / CODE_FILES).join() == CHUNK + 3 + weights
    assert ReadAhead(str(folder), budget=1).join() == checkpoint_chunks(folder)[0].size
    assert ReadAhead("no/such-model").join() == 0, "a Hub id not downloaded yet: nothing to read"


def test_the_child_reads_the_installed_distributions_records_before_the_code_files(tmp_path):
    """diffusers and transformers index every installed distribution on import (on Python 3.12 a stat of each file
    of each record): the child does the same first, while the parent still imports torch."""
    info = tmp_path / "site" / "fake_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-pkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("fake_pkg/__init__.py,,\nfake_pkg-1.0.dist-info/METADATA,,\n")
    code = _files(tmp_path, [10])[0]
    (tmp_path / CODE_FILES).write_text(str(code))
    script = ("import sys; opened = []; sys.addaudithook(lambda e, a: e == 'open' and opened.append(str(a[0]))); "
              f"from helios.read_ahead import main; main(['--code-list', {str(tmp_path / CODE_FILES)!r}]); "
              "import json; print(json.dumps(opened))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(Path(__file__).parents[1])]))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    read, opened = result.stdout.splitlines()
    assert read == "10"
    opened = json.loads(opened)
    assert str(info / "RECORD") in opened, "the fake distribution's record was never read"
    assert opened.index(str(info / "RECORD")) < opened.index(str(code))


def test_a_first_start_reads_nothing_before_its_load_and_the_opt_out_reads_nothing_at_all(tmp_path, monkeypatch):
    """No list noted yet: the checkpoint read beside the imports would make them wait behind it."""
    monkeypatch.setenv("HELIOS_STUDIO_CACHE", str(tmp_path))
    read_ahead_from_here(["generate", "--model", "tiny"])
    assert startup._early is None
    (tmp_path / CODE_FILES).write_text("")
    monkeypatch.setenv("HELIOS_READ_AHEAD", "off")
    read_ahead_from_here(["generate", "--model", "tiny"])
    assert startup._early is None
    monkeypatch.delenv("HELIOS_READ_AHEAD")
    read_ahead_from_here(["generate", "--model", "tiny"])
    assert startup._early is not None and startup._early.model == "tiny"
    startup._early.stop()
    startup._early = None


def test_a_read_ahead_that_cannot_start_leaves_the_load_to_read_for_itself(tiny_checkpoint, monkeypatch):
    def no_process(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(startup.subprocess, "Popen", no_process)
    ahead = ReadAhead("tiny")
    assert not ahead.is_alive() and ahead.stop() == 0
    model = load_checkpoint(str(tiny_checkpoint("distilled")), LoadOptions(device="cpu"))
    assert model.flavour.name == "distilled"


def _has_read(pid: int, count: int, within: float) -> bool:
    """Whether the process has read `count` bytes (its imports read far fewer) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        io = Path(f"/proc/{pid}/io").read_text()
        if int(next(line for line in io.splitlines() if line.startswith("rchar:")).split()[1]) >= count:
            return True
        time.sleep(0.05)
    return False


def test_stop_ends_the_reading_at_once(endless):
    ahead = ReadAhead(str(endless), budget=2**40)
    assert _has_read(ahead.pid, 4 * CHUNK, within=60) and ahead.is_alive()
    started = time.monotonic()
    assert 0 < ahead.stop() < 2**40 and not ahead.is_alive()
    assert time.monotonic() - started < 2


def test_the_child_ends_when_its_parent_does(endless):
    parent = subprocess.run(
        [sys.executable, "-c", "import os, time; from helios.startup import ReadAhead; "
         f"print(ReadAhead({str(endless)!r}).pid, flush=True); time.sleep(0.5); os._exit(0)"],
        capture_output=True, text=True, check=True, timeout=60)
    assert _gone(int(parent.stdout), within=5), "the read-ahead outlived the process it read for"


def test_the_load_takes_over_the_early_start_and_stops_it_when_done(endless, tmp_path, monkeypatch):
    """A start reads from the first line; the load of the model it named reads on with the start's child, a load of
    another model stops that one and reads its own; either way the reading ends with the load."""
    made, alive = [], []
    of, place = ReadAhead.of, loading.assemble

    def reading_endlessly(model, folder, fp8):  # the tiny model's files are read in an instant; these, until stopped
        made.append(of(model, endless))
        return made[-1]

    def watched_assemble(*args):
        alive.append(made[-1].is_alive())
        return place(*args)

    monkeypatch.setattr(loading.ReadAhead, "of", staticmethod(reading_endlessly))
    monkeypatch.setattr(loading, "assemble", watched_assemble)
    (tmp_path / CODE_FILES).write_text("")
    monkeypatch.setenv("HELIOS_STUDIO_CACHE", str(tmp_path))
    read_ahead_from_here(["--model", "tiny"])
    early = startup._early
    load_checkpoint("tiny", LoadOptions(device="cpu"))
    assert made == [early] and startup._early is None, "the load started a second reader for the same model"

    read_ahead_from_here(["--model", str(endless)])
    other = startup._early
    load_checkpoint("tiny", LoadOptions(device="cpu"))
    assert made[-1] is not other and not other.is_alive(), (
        "the early read-ahead for another model went on beside the load"
    )
    assert alive[-1], "the load's own read-ahead was not reading while the weights were placed"
    assert not made[-1].is_alive(), "the read-ahead outlived the load"


def test_a_start_reads_ahead_the_model_its_command_line_names_before_importing_torch(tmp_path):
    """A child started after torch's imports would have nothing left to read ahead of them."""
    assert model_named(["generate", "--model", "a/b", "--prompt", "x"]) == "a/b"
    assert model_named(["generate", "--model=/data/helios"]) == "/data/helios"
    assert model_named(["generate", "--prompt", "x"]) == os.environ.get("HELIOS_MODEL", "BestWishYsh/Helios-Distilled")
    code = ("import runpy, sys; from helios import startup\n"
            "seen, real = [], startup.ReadAhead.__init__\n"
            "def watched(self, model, *args, **kw):\n"
            "    seen.append((model, 'torch' in sys.modules)); real(self, model, *args, **kw)\n"
            "startup.ReadAhead.__init__ = watched\n"
            "sys.argv = ['helios', 'generate', '--model', 'tiny', '--help']\n"
            "try: runpy.run_module('helios', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print(seen)")
    (tmp_path / CODE_FILES).write_text("")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "HELIOS_STUDIO_CACHE": str(tmp_path)}).stdout
    assert out.strip().splitlines()[-1] == "[('tiny', False)]"


def test_the_load_imports_what_it_uses_before_the_read_ahead_starts():
    """In a fresh process: what `_load` imports before starting the read-ahead holds every module the load then uses."""
    modules = ("diffusers.models.transformers.transformer_helios", "diffusers.models.autoencoders.autoencoder_kl_wan",
               "transformers.models.umt5.modeling_umt5", "helios.weights.place")
    code = ("import sys; from helios.loading import _import_libraries; _import_libraries(); "
            f"print([m for m in {modules!r} if m not in sys.modules])")
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_a_start_notes_the_files_its_imports_and_load_read_for_the_next_start(tiny_checkpoint, tmp_path):
    """Beyond the compiled modules: transformers reads its ~1,700 model sources to index itself, and the import system
    lists folders; never the weights (read in the load's order) nor what the run writes."""
    folder = tiny_checkpoint("distilled")
    out = tmp_path / "v.npy"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "helios",
            "generate",
            "--model",
            str(folder),
            "--prompt",
            "x",
            "--frames",
            "33",
            "--steps",
            "1,1,1",
            "--height",
            "64",
            "--width",
            "128",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "HELIOS_STUDIO_CACHE": str(tmp_path)},
    )
    noted = (tmp_path / CODE_FILES).read_text().splitlines()
    assert all(os.path.exists(name) for name in noted)
    assert any("libtorch_cpu.so" in name for name in noted), "torch's own library, the largest a start maps"
    helios = [name for name in noted if "transformer_helios" in name and name.endswith(".pyc")]
    assert helios and noted.index(helios[0]) > noted.index(next(n for n in noted if "/torch/__pycache__/" in n)), \
        "modules go in the order they were imported"
    assert any("/transformers/models/" in name and name.endswith(".py") for name in noted)
    assert any(os.path.isdir(name) for name in noted) and str(folder / "transformer" / "config.json") in noted
    assert not [name for name in noted if name.endswith(".safetensors") or name.startswith(str(out.with_suffix("")))]
