"""A checkpoint's files, and the code files a start needs, read into the page cache by a child process from a
start's first line until its load is done.

On a cold start the disk is what a load waits on: on the H200 machines 37.8 GiB of weights at 1.5-1.7 GB/s, after ~20 s
of library imports making thousands of small reads, one after another. A reader beside the process keeps the disk busy
from the first line on: first the installed distributions' records, which the libraries index on import, then the code
files the last start opened (shared libraries, compiled modules, the ~1,700 model sources transformers reads to index
itself, packages' metadata, the folders it listed), many at a time, so the imports find them cached, then the
checkpoint's chunks in about the order the load takes them, no more than half the available memory's worth, so what is
read stays cached until it is used. On a machine's first start there is no such list: the child reads what the
libraries a load imports installed instead. On the H200 a machine's first start showed its first frame at 41.2 s, the
next start at 32.1 s (benchmarks/README.md, 12-02 j).

A child process rather than a thread: a thread in this process returns from each read to wait on the interpreter lock
that the imports hold (on the 2-core CPU machine sixteen reader threads made the imports slower, 9.1-10.8 s against
8.7-8.8), and the kernel's own read-ahead (`posix_fadvise`) reads no more than a few megabytes of a file per call.
The child runs this file without torch, and ends when its parent does."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

CHUNK = 8 * 2**20
CODE_FILES = "code-files.txt"
CODE_READERS = 16
"""Code files are small and many: reads in flight side by side hide each one's wait on the disk."""
WEIGHTS = (".safetensors", ".bin", ".gguf")
"""A checkpoint's weights, read in the load's order after the code, never as code."""
LIBRARIES = ("torch", "diffusers", "transformers")
"""What a load imports: a machine's first start reads their installed code, and their requirements', for want of a
noted list."""
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


def code_paths(code_list: Path) -> list[str]:
    try:
        return code_list.read_text().splitlines()
    except OSError:
        return []


def read_code_path(name: str, halted: Callable[[], bool]) -> int:
    """A noted file read whole (and, for a compiled module, its source's inode, which the import checks), or a noted
    folder listed with each entry's inode (libraries test what is there); returns the bytes read. What is gone or
    changed since is left to whoever uses it."""
    read = 0
    try:
        if os.path.isdir(name):
            with os.scandir(name) as entries:
                for entry in entries:
                    entry.stat(follow_symlinks=False)
            return 0
        if name.endswith(".pyc"):
            _source_stat(name)
        with open(name, "rb", buffering=0) as f:
            while not halted() and (block := f.read(CHUNK)):
                read += len(block)
    except (OSError, ValueError):
        pass
    return read


def installed_code(libraries: Iterable[str]) -> list[str]:
    """The shared libraries, compiled modules and sources that `libraries` and everything they require installed, from
    their install records, then the folders holding them: more than the imports read and in no import order, but read
    side by side in seconds."""
    from importlib import metadata

    todo, seen, found = list(libraries), set(), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except (metadata.PackageNotFoundError, ValueError):
            continue  # a requirement for another platform, or not installed: nothing of it to read
        found += [str(f.locate()) for f in dist.files or () if f.suffix in (".so", ".pyc", ".py") or ".so." in f.name]
        todo += [re.match(r"[A-Za-z0-9._-]+", r).group() for r in dist.requires or () if "extra ==" not in r]
    folders = sorted({os.path.dirname(name) for name in found})
    return sorted(found, key=lambda n: not (n.endswith(".so") or ".so." in n)) + folders


def index_distributions() -> None:
    """What diffusers and transformers each do on import: map every installed package to its distribution, which on
    Python 3.12 stats each file of each install record (10,224 for the CPU machine's 103 distributions; on the H200 6.75
    s of the imports' wait behind the checkpoint's reads, in `benchmarks.load_trace`). Made here first, those stats find
    their inodes cached."""
    from importlib import metadata

    try:
        metadata.packages_distributions()
    except Exception:  # a broken record: the libraries pass over it the same way
        pass


def _source_stat(compiled: str) -> None:
    try:
        os.stat(importlib.util.source_from_cache(compiled))
    except (OSError, ValueError):
        pass  # a module without a source beside it


def read_code(names: list[str], halted: Callable[[], bool]) -> int:
    with ThreadPoolExecutor(CODE_READERS) as pool:
        return sum(pool.map(lambda name: read_code_path(name, halted), names))


def checkpoint_folder(model: str) -> Path | None:
    """The folder of a model already on this machine: a checkpoint folder, or a Hub id in the Hub's cache."""
    path = Path(model).expanduser()
    if (path / "model_index.json").is_file():
        return path
    if model.count("/") != 1 or path.exists():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "model_index.json")
    except Exception:  # not installed, or not an id the Hub takes: the load says what is wrong, in words
        return None
    return Path(found).parent if isinstance(found, str) else None


def read_chunks(chunks: Iterable[Chunk], budget: int, halted: Callable[[], bool]) -> int:
    """Reads each chunk once, in order, until `budget` bytes are read or `halted()`; returns the bytes read."""
    buffer, files, read = memoryview(bytearray(CHUNK)), {}, 0
    try:
        for chunk in chunks:
            if read >= budget or halted():
                break
            if chunk.file not in files:
                files[chunk.file] = open(chunk.file, "rb", buffering=0)
            files[chunk.file].seek(chunk.offset)
            read += files[chunk.file].readinto(buffer[:chunk.size]) or 0
    except OSError:
        pass  # the load's own reads say what is wrong with a file, in words
    finally:
        for f in files.values():
            f.close()
    return read


class ReadAhead:
    """The child process reading the code files of `code_list` (or, without one, the installed code of `libraries`),
    then the checkpoint of `model` where it is on this machine. `stop` ends it within a chunk and returns the bytes it
    read."""

    def __init__(self, model: str | None, code_list: Path | None = None, budget: int | None = None,
                 libraries: tuple[str, ...] = ()):
        self.model = model
        root = Path(__file__).resolve().parents[2]
        command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(root)!r}); "
                   "from helios.placement.read_ahead import main; main()"]
        command += ["--model", model] if model else []
        command += ["--code-list", str(code_list)] if code_list else []
        command += ["--libraries", ",".join(libraries)] if libraries else []
        command += ["--budget", str(budget)] if budget is not None else []
        try:
            self._child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self._child = None  # no process to spare (a limit, a sandbox): the load reads for itself, only slower
        self.pid = self._child.pid if self._child else None

    @classmethod
    def of(cls, model: str, folder: Path) -> ReadAhead:
        """The one this process's start began for `model`, or a new one reading `folder`."""
        global _early
        early, _early = _early, None
        if early is not None and early.model == model:
            return early
        if early is not None:
            early.stop()
        return cls(str(folder))

    def is_alive(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def join(self) -> int:
        out, _ = self._child.communicate() if self._child else ("", None)
        return int(out.strip() or 0)

    def stop(self) -> int:
        if self.is_alive():
            self._child.send_signal(signal.SIGTERM)
        return self.join()


_early: ReadAhead | None = None
"""What `start_early` began, for the load to take over."""


def model_named(argv: list[str], default: str | None) -> str | None:
    """The `--model` a command line names, else `default`."""
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return default


class _Opened:
    """The files this process reads and the folders it lists from its first line until its first load notes them, seen
    through Python's audit events: what the imports use beyond the compiled modules the imported names point at."""

    def __init__(self):
        self.paths: list[str] = []
        self.recording = self.hooked = False

    def start(self) -> None:
        if not self.hooked:
            sys.addaudithook(self._event)
            self.hooked = self.recording = True

    def _event(self, event: str, args: tuple) -> None:
        if not self.recording or event not in ("open", "os.listdir", "os.scandir") or not args:
            return
        path = args[0]
        if event == "open" and (len(args) < 3 or _writes(args[1], args[2])):
            return
        if isinstance(path, (str, bytes, os.PathLike)):
            self.paths.append(os.fsdecode(path))

    def stop(self) -> list[str]:
        self.recording = False
        return self.paths


def _writes(mode: str | None, flags: int) -> bool:
    if mode is not None:
        return any(c in mode for c in "wax+")
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


_opened = _Opened()


def start_early(model: str | None, cache: Path) -> None:
    """From a start's first line, before torch is imported: notes what this start opens, for the next, and reads the
    code files the last load noted in `cache` (on a machine's first start, the libraries' installed code), then the
    checkpoint of `model`, while the libraries import. The code comes first and all of it: on the H200 machine
    (`benchmarks.load_trace`, page cache dropped) the checkpoint read from the first line without it made the imports
    wait behind its reads (load 54.0 s, against 50.9 s reading from the load on)."""
    global _early
    _opened.start()
    noted = cache / CODE_FILES
    _early = ReadAhead(model, noted) if noted.is_file() else ReadAhead(model, libraries=LIBRARIES)


def note_code_files(cache: Path) -> None:
    """Lists the code files this process has used for the next start to read ahead: the shared libraries (torch's
    and CUDA's, the largest), then what it opened and listed from its first line, in that order, then any compiled
    module imported otherwise (a process that did not start with `start_early`)."""
    maps = Path("/proc/self/maps")
    names = [line.split()[-1] for line in maps.read_text().splitlines()] if maps.exists() else []
    libraries = [n for n in names if n.endswith(".so") or ".so." in n]
    modules = [getattr(m.__spec__, "cached", None) for m in list(sys.modules.values()) if getattr(m, "__spec__", None)]
    code = [n for n in dict.fromkeys(libraries + _opened.stop() + modules)
            if n and os.path.isabs(n) and not n.endswith(WEIGHTS) and not n.startswith(("/proc/", "/sys/", "/dev/"))
            and os.path.exists(n)]
    scratch = cache / f".{CODE_FILES}.{os.getpid()}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        scratch.write_text("\n".join(code))
        scratch.replace(cache / CODE_FILES)
    except OSError:
        return  # a cache folder that cannot be written costs the next start its head start, nothing more


def main(argv: list[str] | None = None) -> None:
    """The child: reads, and prints the bytes read when done, stopped (SIGTERM) or orphaned."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--code-list", type=Path)
    parser.add_argument("--libraries", type=lambda names: names.split(","), default=())
    parser.add_argument("--budget", type=int)
    args = parser.parse_args(argv)
    parent, stopped = os.getppid(), []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))

    def halted() -> bool:
        return bool(stopped) or os.getppid() != parent

    from .host import available_memory

    budget = args.budget if args.budget is not None else available_memory() // 2
    index_distributions()
    code = code_paths(args.code_list) if args.code_list else installed_code(args.libraries)
    read = read_code(code, halted)
    folder = checkpoint_folder(args.model) if args.model and not halted() else None
    if folder is not None:
        read += read_chunks(checkpoint_chunks(folder), budget - read, halted)
    print(read, flush=True)
