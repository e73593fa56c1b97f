"""The checkpoint's files are read into the page cache in about the order the load takes them, up to a budget, from
when the libraries are imported until the load ends; the code files a load used are read ahead of the next start's
imports."""

import io
import os
import subprocess
import sys
import threading

from helios import loading
from helios.loading import LoadOptions, _load
from helios.placement import read_ahead
from helios.placement.read_ahead import (
    CHUNK,
    CODE_FILES,
    READERS,
    ReadAhead,
    checkpoint_chunks,
    chunks_of,
    start_code_read_ahead,
)


def _files(tmp_path, sizes):
    files = []
    for i, size in enumerate(sizes):
        files.append(tmp_path / f"{i}.safetensors")
        files[-1].write_bytes(bytes([i]) * size)
    return files


def test_its_readers_read_every_byte_once_up_to_the_budget(tmp_path, monkeypatch):
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
            read.append((self.at, len(buffer)))
            return super().readinto(buffer)

    monkeypatch.setattr(read_ahead, "open", lambda file, mode, buffering: Watched(file), raising=False)
    everything = ReadAhead(chunks, budget=2**40, readers=3)
    everything.join()
    assert everything.read == sum(f.stat().st_size for f in files) == sum(size for _, size in read)
    assert sorted(read) == sorted((c.offset, c.size) for c in chunks)
    some = ReadAhead(chunks, budget=2 * CHUNK, readers=4)
    some.join()
    assert some.read == 2 * CHUNK and not some.is_alive()


def test_the_transformer_and_text_encoder_are_read_side_by_side_after_the_vae(tmp_path):
    for part, size in (("vae", CHUNK), ("transformer", 6 * CHUNK), ("text_encoder", 2 * CHUNK)):
        (tmp_path / part).mkdir()
        (tmp_path / part / "a.safetensors").write_bytes(b"\0" * size)
    order = [c.file.parent.name for c in checkpoint_chunks(tmp_path)]
    assert order[0] == "vae" and len(order) == 9
    assert order[1:5].count("text_encoder") == 1 and order[5:].count("text_encoder") == 1


def test_stop_ends_the_reading(tmp_path):
    (file,) = _files(tmp_path, [CHUNK])
    ahead = ReadAhead(chunks_of(file) * 10**6, budget=2**50, readers=2)
    read = ahead.stop()
    assert not ahead.is_alive() and read < 10**6 * CHUNK


def test_the_load_reads_ahead_until_it_ends(tiny_checkpoint, monkeypatch):
    """The tiny files are read over and over, so the reading lasts until the load stops it."""
    made, beside_the_load = [], []
    folder = tiny_checkpoint("distilled")

    def watched_of(folder):
        made.append(ReadAhead(checkpoint_chunks(folder) * 10**5, budget=2**50))
        return made[-1]

    place, imports = loading.assemble, loading._import_libraries

    def readers():
        return sum(t.name.startswith("read-ahead") and t.is_alive() for t in threading.enumerate())

    def watched_assemble(*args):
        beside_the_load.append(readers())
        return place(*args)

    def watched_imports():
        beside_the_imports.append(readers())
        return imports()

    beside_the_imports = []
    monkeypatch.setattr(loading.ReadAhead, "of", staticmethod(watched_of))
    monkeypatch.setattr(loading, "assemble", watched_assemble)
    monkeypatch.setattr(loading, "_import_libraries", watched_imports)
    _load(str(folder), LoadOptions(device="cpu"))
    (ahead,) = made
    assert beside_the_imports == [0], "the libraries' imports had to share the disk with the read-ahead"
    assert beside_the_load == [READERS], "the readers were not reading while the weights were placed"
    assert ahead.read > sum(f.stat().st_size for f in folder.rglob("*.safetensors")) and not ahead.is_alive()


def test_the_load_imports_what_it_uses_before_the_read_ahead_starts():
    """In a fresh process: what `_load` imports before starting the read-ahead holds every module the load then uses."""
    modules = ("diffusers.models.transformers.transformer_helios", "diffusers.models.autoencoders.autoencoder_kl_wan",
               "transformers.models.umt5.modeling_umt5", "helios.placement.place")
    code = ("import sys; from helios.loading import _import_libraries; _import_libraries(); "
            f"print([m for m in {modules!r} if m not in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_a_load_notes_the_code_files_its_process_used(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HELIOS_STUDIO_CACHE", str(tmp_path))
    _load(str(tiny_checkpoint("distilled")), LoadOptions(device="cpu"))
    noted = (tmp_path / CODE_FILES).read_text().splitlines()
    assert all(os.path.isfile(name) for name in noted)
    assert any("libtorch_cpu.so" in name for name in noted), "torch's own library, the largest a start maps"
    helios = [name for name in noted if "transformer_helios" in name and name.endswith(".pyc")]
    assert helios and noted.index(helios[0]) > noted.index(next(n for n in noted if "/torch/__pycache__/" in n)), \
        "modules go in the order they were imported"


def test_a_start_asks_the_kernel_to_read_the_noted_files_ahead(tmp_path, monkeypatch):
    kept, gone = tmp_path / "kept.pyc", tmp_path / "gone.pyc"
    kept.write_bytes(b"\0" * 1000)
    (tmp_path / CODE_FILES).write_text(f"{gone}\n{kept}")
    advised = []
    monkeypatch.setattr(read_ahead.os, "posix_fadvise",
                        lambda fd, offset, length, advice: advised.append((os.readlink(f"/proc/self/fd/{fd}"), offset, length, advice)))
    start_code_read_ahead(tmp_path).join()
    assert advised == [(str(kept), 0, 0, os.POSIX_FADV_WILLNEED)], "the whole of every file there is, the rest skipped"
    assert start_code_read_ahead(tmp_path / "never-loaded") is None
