"""How far two videos of the same size differ, segment by segment, and where: PSNR and SSIM per segment and a
heat-map video of the per-pixel difference. Both are read one frame at a time, so any length fits in memory."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BadInput
from .measures import ssim
from .media import VideoWriter, video_frames

SATURATES_AT = 64
"""A difference of this many levels (of 255, averaged over the colour channels) is drawn at full brightness."""
_ANCHORS = np.array([[0, 0, 0], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)
HEAT = np.stack(
    [np.interp(np.linspace(0, len(_ANCHORS) - 1, 256), np.arange(len(_ANCHORS)), _ANCHORS[:, c]) for c in range(3)], 1
).astype(np.uint8)
"""Black through purple and orange to pale yellow: no difference is black."""


@dataclass(frozen=True)
class VideoDifference:
    segment_psnr_db: list[float]
    """Per segment of the shorter video; `inf` where the two are identical."""
    segment_ssim: list[float]
    """Mean SSIM of the frames, per segment (helios/measures.py): 1 where the structure is the same."""
    frames: int
    heatmap: Path


def psnr_db(squared_error: float, values: int) -> float:
    return math.inf if squared_error == 0 else 10 * math.log10(255**2 * values / squared_error)


def video_difference(a: Path, b: Path, segment_frames: list[int], heatmap: Path) -> VideoDifference:
    """`segment_frames`: how many frames each segment has, in order (frames past them count to the last one)."""
    ends = np.cumsum(segment_frames)
    errors = [0.0] * len(segment_frames)
    values = [0] * len(segment_frames)
    similarity = [[] for _ in segment_frames]
    frames = 0
    with VideoWriter(heatmap) as writer:
        for fa, fb in zip(video_frames(a), video_frames(b)):
            if fa.shape != fb.shape:
                raise BadInput(
                    f"The two videos differ in size ({fa.shape[1]}x{fa.shape[0]} and {fb.shape[1]}x{fb.shape[0]}): "
                    "compare runs of one resolution."
                )
            diff = np.abs(fa.astype(np.int16) - fb.astype(np.int16))
            segment = min(int(np.searchsorted(ends, frames, side="right")), len(errors) - 1)
            errors[segment] += float(np.square(diff, dtype=np.int64).sum())
            values[segment] += diff.size
            similarity[segment].append(ssim(fa, fb))
            level = np.minimum(diff.mean(axis=2) * (255 / SATURATES_AT), 255).astype(np.uint8)
            writer.add(HEAT[level][None])
            frames += 1
    return VideoDifference([psnr_db(e, n) for e, n in zip(errors, values) if n],
                           [float(np.mean(s)) for s in similarity if s], frames, heatmap)
