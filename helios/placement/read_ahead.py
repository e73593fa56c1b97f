"""A checkpoint's files read into the page cache while the process starts. Imports, CUDA's start and building the
empty modules take seconds in which the disk would sit idle, and on a cold start the disk is what the load waits on
(37.8 GiB at ~1 GB/s on the H200 machines: ~40 s of a ~50 s load). The files are read in the order the load reads
them, and the reading stops when the load's own reads begin, so it never competes with them for the disk; it reads no
more than half the memory available, so what it caches is still there when the load comes to it."""

from __future__ import annotations

import threading
from pathlib import Path

from .capability import available_memory

CHUNK = 16 * 2**20
ORDER = ("vae", "transformer", "text_encoder")
"""The VAE is read first (diffusers' own loader, before the rest), then the transformer, the longest of the reads."""


def checkpoint_files(folder: Path) -> list[Path]:
    return [f for part in ORDER for f in sorted((folder / part).glob("*.safetensors"))]


class ReadAhead(threading.Thread):
    def __init__(self, files: list[Path], budget: int):
        super().__init__(daemon=True, name="read-ahead")
        self.files, self.budget, self.read = files, budget, 0
        self._halt = threading.Event()
        self.start()

    @classmethod
    def of(cls, folder: Path) -> ReadAhead:
        return cls(checkpoint_files(folder), available_memory() // 2)

    def run(self) -> None:
        buffer = bytearray(CHUNK)
        try:
            for file in self.files:
                with open(file, "rb", buffering=0) as f:
                    while not self._halt.is_set() and self.read < self.budget:
                        n = f.readinto(buffer)
                        if not n:
                            break
                        self.read += n
                if self._halt.is_set() or self.read >= self.budget:
                    return
        except OSError:
            return  # the load's own reads say what is wrong with a file, in words

    def stop(self) -> int:
        """Ends the reading (within one chunk) and returns the bytes it read."""
        self._halt.set()
        self.join()
        return self.read
