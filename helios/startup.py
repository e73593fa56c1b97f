"""A cold start reads ahead: from its first line a child process reads the code files the last start used, then the
checkpoint, into the page cache, while this process imports the libraries; the load reads its checkpoint the same way.

On a cold start the disk is what a load waits on (the H200 machines: 37.8 GiB at 1.5-1.7 GB/s, after ~20 s of imports
making thousands of small reads one after another). With a list noted by the last start, a cold second start showed
its first frame at 37.0 s against a first start's 56.8 s on one machine, measured before the reading was cut to this
core (benchmarks/README.md, Decisions: start-up reading). Without one (a machine's first start)
nothing is read before the load: the checkpoint read beside the imports made them wait behind it (54.0 s against
50.9 s). A child process rather than a thread: a reader thread competes for the interpreter lock the imports hold.
`HELIOS_READ_AHEAD=off` turns it off."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import DEFAULT_MODEL
from .cache import cache_dir

CHUNK = 8 * 2**20
CODE_FILES = "code-files.txt"
CODE_READERS = 16
"""Code files are small and many: reads in flight side by side hide each one's wait on the disk."""
WEIGHTS = (".safetensors", ".bin", ".gguf")
"""A checkpoint's weights, read in the load's order after the code, never as code."""
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
    """A noted file read whole, or a noted folder listed; returns the bytes read. What is gone since is left to
    whoever uses it."""
    read = 0
    try:
        if os.path.isdir(name):
            os.listdir(name)
            return 0
        with open(name, "rb", buffering=0) as f:
            while not halted() and (block := f.read(CHUNK)):
                read += len(block)
    except (OSError, ValueError):
        pass
    return read


def read_code(names: list[str], halted: Callable[[], bool]) -> int:
    with ThreadPoolExecutor(CODE_READERS) as pool:
        return sum(pool.map(lambda name: read_code_path(name, halted), names))


def index_distributions() -> None:
    """What diffusers and transformers each do on import: map every installed package to its distribution, which on
    Python 3.12 stats each file of each install record (on the H200, 6.75 s of the imports' wait behind the
    checkpoint's reads). Made here first, those stats find their inodes cached."""
    from importlib import metadata

    try:
        metadata.packages_distributions()
    except Exception:  # a broken record: the libraries pass over it the same way
        pass


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
    """The child process reading the code files of `code_list`, then the checkpoint of `model` where it is on this
    machine. `stop` ends it within a chunk and returns the bytes it read."""

    def __init__(self, model: str | None, code_list: Path | None = None, budget: int | None = None):
        self.model = model
        root = Path(__file__).resolve().parents[2]
        command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(root)!r}); "
                   "from helios.startup import main; main()"]
        command += ["--model", model] if model else []
        command += ["--code-list", str(code_list)] if code_list else []
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


def model_named(argv: list[str]) -> str:
    """The `--model` a command line names, else HELIOS_MODEL, else Helios-Distilled."""
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return os.environ.get("HELIOS_MODEL") or DEFAULT_MODEL


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


def read_ahead_from_here(argv: list[str]) -> None:
    """The first line of every start (`app.py`, `python -m helios`, the `helios` command), before torch is imported:
    notes what this start opens, for the next, and where the last start noted its code files, reads them and then
    the checkpoint its command line names while the libraries import. Off with HELIOS_READ_AHEAD=off."""
    global _early
    if os.environ.get("HELIOS_READ_AHEAD", "on").lower() in ("off", "0", "no"):
        return
    _opened.start()
    noted = cache_dir() / CODE_FILES
    if noted.is_file():
        _early = ReadAhead(model_named(argv), noted)


def note_code_files(cache: Path) -> None:
    """Lists the code files this process has used for the next start to read ahead: the shared libraries (torch's
    and CUDA's, the largest), then what it opened and listed from its first line, in that order, then any compiled
    module imported otherwise (a process that did not start with `read_ahead_from_here`)."""
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
    parser.add_argument("--budget", type=int)
    args = parser.parse_args(argv)
    parent, stopped = os.getppid(), []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))

    def halted() -> bool:
        return bool(stopped) or os.getppid() != parent

    from .fit.host import available_memory

    budget = args.budget if args.budget is not None else available_memory() // 2
    index_distributions()
    read = read_code(code_paths(args.code_list), halted) if args.code_list else 0
    folder = checkpoint_folder(args.model) if args.model and not halted() else None
    if folder is not None:
        read += read_chunks(checkpoint_chunks(folder), budget - read, halted)
    print(read, flush=True)
