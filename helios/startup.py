"""A cold start reads ahead: from its first line a child process (helios/read_ahead.py) reads the code files the last
start used, then the checkpoint, into the page cache while this process imports the libraries; the load reads its
checkpoint the same way.

On a cold start the disk is what a load waits on (the H200 machines: 37.8 GiB at 1.5-1.7 GB/s, after ~20 s of imports
making thousands of small reads one after another). With the list the last start noted, a second cold start showed its
first frame at 37.0 s against a first start's 56.8 s on one machine (benchmarks/README.md, Decisions: start-up
reading, which also says what was cut and why). Without a list nothing is read before the load: the checkpoint read
beside the imports made them wait behind it. A child process, not a thread: reader threads compete for the
interpreter lock the imports hold. `HELIOS_READ_AHEAD=off` turns it off."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import DEFAULT_MODEL
from .cache import cache_dir, fp8_form_cache

CODE_FILES = "code-files.txt"
WEIGHTS = (".safetensors", ".bin", ".gguf")


class ReadAhead:
    """The child reading `code_list`'s files, then `model`'s checkpoint where it is on this machine (for an `fp8`
    start, its saved FP8 form in place of the transformer's files, if one was made). `stop` ends it within a chunk and
    returns the bytes it read."""

    def __init__(self, model: str | None, code_list: Path | None = None, budget: int | None = None,
                 fp8: bool = False):
        self.model, self.fp8 = model, fp8
        forms = fp8_form_cache() if fp8 else None
        root = str(Path(__file__).resolve().parents[1])
        child = f"import sys; sys.path.insert(0, {root!r}); from helios.read_ahead import main; main()"
        command = [sys.executable, "-c", child]
        for flag, value in (("--model", model), ("--code-list", code_list), ("--budget", budget),
                            ("--fp8-forms", forms)):
            command += [flag, str(value)] if value is not None else []
        try:
            self._child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self._child = None  # no process to spare (a limit, a sandbox): the load reads for itself, only slower
        self.pid = self._child.pid if self._child else None

    @classmethod
    def of(cls, model: str, folder: Path, fp8: bool = False) -> ReadAhead:
        """The one this process's start began for `model`, or a new one reading `folder`."""
        global _early
        early, _early = _early, None
        if early is not None and (early.model, early.fp8) == (model, fp8):
            return early
        if early is not None:
            early.stop()
        return cls(str(folder), fp8=fp8)

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
"""What `read_ahead_from_here` began, for the load to take over."""
_opened: list[str] | None = None
"""The files this process opened for reading and the folders it listed from its first line until the load notes
them (Python's audit events): what the imports use beyond the compiled modules of the imported names."""


def model_named(argv: list[str]) -> str:
    """The `--model` a command line names, else HELIOS_MODEL, else Helios-Distilled."""
    named = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    named.add_argument("--model")
    return named.parse_known_args(argv)[0].model or os.environ.get("HELIOS_MODEL") or DEFAULT_MODEL


def _audit(event: str, args: tuple) -> None:
    if _opened is None or event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    if event == "open" and (len(args) < 3 or any(c in (args[1] or "") for c in "wax+")
                            or args[1] is None and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
        return
    if isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


def read_ahead_from_here(argv: list[str]) -> None:
    """The first line of every start (`app.py`, `python -m helios`, the `helios` command), before torch is imported:
    notes what this start opens, for the next, and where the last start noted its code files, reads them and then
    the checkpoint its command line names while the libraries import."""
    global _early, _opened
    if os.environ.get("HELIOS_READ_AHEAD", "on").lower() in ("off", "0", "no"):
        return
    if _opened is None:
        _opened = []
        sys.addaudithook(_audit)
    noted = cache_dir() / CODE_FILES
    if noted.is_file():
        _early = ReadAhead(model_named(argv), noted, fp8="--fp8" in argv)


def note_code_files(cache: Path) -> None:
    """Lists the code files this process used, for the next start: the shared libraries (torch's and CUDA's, the
    largest), what it opened and listed from its first line, then any compiled module imported otherwise."""
    global _opened
    maps = Path("/proc/self/maps")
    names = [line.split()[-1] for line in maps.read_text().splitlines()] if maps.exists() else []
    libraries = [n for n in names if n.endswith(".so") or ".so." in n]
    opened, _opened = _opened or [], None
    modules = [getattr(m.__spec__, "cached", None) for m in list(sys.modules.values()) if getattr(m, "__spec__", None)]
    code = [n for n in dict.fromkeys(libraries + opened + modules)
            if n and os.path.isabs(n) and not n.endswith(WEIGHTS) and not n.startswith(("/proc/", "/sys/", "/dev/"))
            and os.path.exists(n)]
    scratch = cache / f".{CODE_FILES}.{os.getpid()}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        scratch.write_text("\n".join(code))
        scratch.replace(cache / CODE_FILES)
    except OSError:
        return  # a cache folder that cannot be written costs the next start its head start, nothing more
