"""What a checkpoint's safetensors files hold, read from their headers alone: each tensor's file, place, dtype and
shape. The memory tier is chosen from it before a weight is read (fit/size.py), and the loader reads each tensor
straight to its place with it (weights/files.py)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ModelUnavailable

DTYPES = {
    "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
@dataclass(frozen=True)
class Stored:
    file: Path
    offset: int
    nbytes: int
    dtype: torch.dtype
    shape: tuple[int, ...]


def stored_tensors(folder: Path) -> dict[str, Stored]:
    """Every tensor of a component folder's safetensors files, from their headers."""
    stored = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with open(file, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
        except (struct.error, ValueError, MemoryError, OverflowError):
            raise ModelUnavailable(
                f"{file} has a damaged header: the checkpoint is damaged; download it again."
            ) from None
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            if meta["dtype"] not in DTYPES:
                raise ModelUnavailable(f"{file} stores {name} as {meta['dtype']}, which this loader does not read.")
            start, end = meta["data_offsets"]
            stored[name] = Stored(file, 8 + length + start, end - start, DTYPES[meta["dtype"]], tuple(meta["shape"]))
    return stored
