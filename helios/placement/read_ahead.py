"""A checkpoint's files read into the page cache from the moment the libraries are imported until the load is done.
On a cold start the disk is what the load waits on (37.8 GiB on the H200 machines), and the load's own reads come in
turns with its other work (building modules, copying to the GPU); a reader beside it keeps the disk busy all along, so
the load's reads mostly find their pages there. One reader: on the H200 machine it read 1.57 GB/s, eight 1.63 GB/s
(`benchmarks.disk_readers`), and eight queued so much that the library imports' small reads behind them took ~29 s
instead of seconds (`benchmarks.load_trace`). Chunks go in about the order the load takes them, and no more than half
the available memory's worth, so what is read stays cached until it is used.

Before that, the imports themselves: on a cold disk they took ~15 s of the H200's 41 s load, reading a few thousand
small files one after another. A load notes the code files its process used (compiled modules, shared libraries) in
the cache folder, and the next start asks the kernel to read them all ahead (`posix_fadvise`, one thread) from its
first line, so the imports find most of them in the page cache. On this project's 2-core CPU machine, its page
cache dropped before each of five alternating starts, that took the imports from 8.4 s to 6.9 s (medians); sixteen
Python threads reading the same files made them slower (9.1-10.8 s against 8.7-8.8), each returning from its read to
wait on the interpreter lock the imports hold. Free of torch: it starts before torch is imported."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 * 2**20
READERS = 1
CODE_FILES = "code-files.txt"
ORDER = ("vae", "transformer", "text_encoder")
"""The VAE comes first (diffusers' own loader reads it before the rest); the other two are read side by side."""


@dataclass(frozen=True)
class Chunk:
    file: Path
    offset: int
    size: int


def chunks_of(file: Path) -> list[Chunk]:
    size = file.stat().st_size
    return [Chunk(file, start, min(CHUNK, size - start)) for start in range(0, size, CHUNK)]


def checkpoint_chunks(folder: Path) -> list[Chunk]:
    """The VAE's chunks, then the transformer's and the text encoder's interleaved by their share of each, as the
    load reads those two side by side."""
    first, *side_by_side = (
        [c for f in sorted((folder / part).glob("*.safetensors")) for c in chunks_of(f)] for part in ORDER
    )
    ranked = sorted((i / len(part), n, i) for n, part in enumerate(side_by_side) for i in range(len(part)))
    return first + [side_by_side[n][i] for _, n, i in ranked]


class ReadAhead:
    def __init__(self, chunks: list[Chunk], budget: int, readers: int = READERS):
        self.budget, self.read = budget, 0
        self._chunks = iter(chunks)
        self._lock, self._halt = threading.Lock(), threading.Event()
        self._readers = [
            threading.Thread(target=self._reader, daemon=True, name=f"read-ahead-{i}") for i in range(readers)
        ]
        for reader in self._readers:
            reader.start()

    @classmethod
    def of(cls, folder: Path) -> ReadAhead:
        from .capability import available_memory

        return cls(checkpoint_chunks(folder), available_memory() // 2)

    def _next(self) -> Chunk | None:
        with self._lock:
            chunk = None if self._halt.is_set() or self.read >= self.budget else next(self._chunks, None)
            self.read += chunk.size if chunk else 0
            return chunk

    def _reader(self) -> None:
        buffer, files = memoryview(bytearray(CHUNK)), {}
        try:
            while (chunk := self._next()) is not None:
                if chunk.file not in files:
                    files[chunk.file] = open(chunk.file, "rb", buffering=0)
                files[chunk.file].seek(chunk.offset)
                files[chunk.file].readinto(buffer[:chunk.size])
        except OSError:
            return  # the load's own reads say what is wrong with a file, in words
        finally:
            for f in files.values():
                f.close()

    def is_alive(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def join(self) -> None:
        for reader in self._readers:
            reader.join()

    def stop(self) -> int:
        """Ends the reading (within a chunk per reader) and returns the bytes taken to read."""
        self._halt.set()
        self.join()
        return self.read


def note_code_files(cache: Path) -> None:
    """Lists the code files this process has used for the next start to read ahead: the shared libraries (torch's
    and CUDA's, the largest), then the modules' compiled files in the order they were imported."""
    maps = Path("/proc/self/maps")
    names = [line.split()[-1] for line in maps.read_text().splitlines()] if maps.exists() else []
    names += [getattr(m.__spec__, "cached", None) or getattr(m, "__file__", None)
              for m in list(sys.modules.values()) if getattr(m, "__spec__", None)]
    code = [n for n in dict.fromkeys(names) if n and (n.endswith((".pyc", ".so")) or ".so." in n) and os.path.isfile(n)]
    scratch = cache / f".{CODE_FILES}.{os.getpid()}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        scratch.write_text("\n".join(code))
        scratch.replace(cache / CODE_FILES)
    except OSError:
        return  # a cache folder that cannot be written costs the next start its head start, nothing more


def start_code_read_ahead(cache: Path) -> threading.Thread | None:
    """The kernel asked to read the code files the last load noted into the page cache; none on a first start, or
    where the system has no `posix_fadvise` (macOS, Windows)."""
    try:
        names = (cache / CODE_FILES).read_text().splitlines()
    except OSError:
        return None
    if not hasattr(os, "posix_fadvise"):
        return None
    thread = threading.Thread(target=_advise, args=(names,), daemon=True, name="code-read-ahead")
    thread.start()
    return thread


def _advise(names: list[str]) -> None:
    for name in names:
        advise(name)


def advise(name: str | Path, offset: int = 0, size: int = 0) -> None:
    """Asks the kernel to read a file's stretch (all of it by default) into the page cache, without waiting for it."""
    try:
        fd = os.open(name, os.O_RDONLY)
    except OSError:
        return  # a file gone or changed since it was listed: whoever uses it reads what it needs
    try:
        os.posix_fadvise(fd, offset, size, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)
