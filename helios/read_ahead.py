"""The read-ahead child a start begins (helios/startup.py): the installed distributions indexed, the code files the last
start noted read 16 at a time, then the checkpoint in about the order the load reads it, into the page cache, up to a
budget, until stopped or orphaned."""

from __future__ import annotations

import argparse
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

CHUNK = 8 * 2**20
CODE_READERS = 16
"""Code files are small and many: reads in flight side by side hide each one's wait on the disk."""
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


def checkpoint_chunks(folder: Path, fp8_forms: Path | None = None) -> list[Chunk]:
    """The VAE's chunks, then the transformer's and the text encoder's interleaved by their share of each. With
    `fp8_forms` (an FP8 start), a saved FP8 form of this checkpoint found there is read in place of the transformer's
    files, which that load reads only a few small tensors of (weights/fp8_saved.py)."""
    form = saved_fp8_form(folder, fp8_forms) if fp8_forms is not None else None
    sources = {p: sorted((folder / p).glob("*.safetensors")) for p in ORDER}
    if form is not None:
        sources["transformer"] = sorted(form.glob("*.safetensors"))
    first, *pair = ([c for f in sources[p] for c in chunks_of(f)] for p in ORDER)
    ranked = sorted((i / len(part), n, i) for n, part in enumerate(pair) for i in range(len(part)))
    return first + [pair[n][i] for _, n, i in ranked]


def saved_fp8_form(folder: Path, forms: Path) -> Path | None:
    """The newest saved FP8 form made from `folder`'s checkpoint, by the folder its meta names."""
    made = []
    for meta in forms.glob("*/helios-fp8.json"):
        try:
            if json.loads(meta.read_text()).get("checkpoint_folder") == str(folder.resolve()):
                made.append((meta.stat().st_mtime, meta.parent))
        except (OSError, ValueError):
            continue
    return max(made)[1] if made else None


def code_paths(code_list: Path) -> list[str]:
    try:
        return code_list.read_text().splitlines()
    except OSError:
        return []


def read_code(names: list[str], halted: Callable[[], bool]) -> int:
    """Each noted file read whole, each noted folder listed, 16 at a time; what is gone since is passed over."""
    def read(name: str) -> int:
        done = 0
        try:
            if os.path.isdir(name):
                os.listdir(name)
                return 0
            with open(name, "rb", buffering=0) as f:
                while not halted() and (block := f.read(CHUNK)):
                    done += len(block)
        except (OSError, ValueError):
            pass
        return done

    with ThreadPoolExecutor(CODE_READERS) as pool:
        return sum(pool.map(read, names))


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


def main(argv: list[str] | None = None) -> None:
    """The child: indexes the installed distributions as diffusers' and transformers' imports do (on Python 3.12 a
    stat of each file of each record: 6.75 s of the imports' wait on the H200), reads, and prints the bytes read
    when done, stopped (SIGTERM) or orphaned."""
    from importlib import metadata

    from .fit.host import available_memory

    parser = argparse.ArgumentParser()
    for flag, kind in (("--model", str), ("--code-list", Path), ("--budget", int), ("--fp8-forms", Path)):
        parser.add_argument(flag, type=kind)
    args = parser.parse_args(argv)
    parent, stopped = os.getppid(), []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))

    def halted() -> bool:
        return bool(stopped) or os.getppid() != parent

    try:
        metadata.packages_distributions()
    except Exception:  # a broken record: the libraries pass over it the same way
        pass
    budget = args.budget if args.budget is not None else available_memory() // 2
    read = read_code(code_paths(args.code_list), halted) if args.code_list else 0
    folder = checkpoint_folder(args.model) if args.model and not halted() else None
    if folder is not None:
        read += read_chunks(checkpoint_chunks(folder, args.fp8_forms), budget - read, halted)
    print(read, flush=True)
