"""What a long-video paper asks of a video, each measured one way from its uint8 frames (H, W, 3), one frame at a time
so a minute-long video fits in memory: flicker where segments meet, drift over the video, and how structurally alike
two videos are. Helios names flicker at segment transitions as the artefact of autoregressive generation, and drift
(colour, brightness, sharpness wandering from the start) as the failure of long videos."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""Rec. 601 weights: brightness and structure are measured on luma."""


@dataclass(frozen=True)
class FrameStats:
    colour: tuple[float, float, float]
    """Mean R, G, B levels (of 255)."""
    brightness: float
    """Mean luma, levels."""
    sharpness: float
    """Variance of luma's 4-neighbour Laplacian: falls as a frame blurs."""
    change: float | None
    """Mean absolute difference from the previous frame, levels over all channels; None for the first."""


def frame_stats(frames: Iterable[np.ndarray], previous: np.ndarray | None = None) -> list[FrameStats]:
    """`previous`: the frame before the first, where the video goes on from one already measured."""
    stats = []
    previous = None if previous is None else previous.astype(np.float32)
    for frame in frames:
        f = frame.astype(np.float32)
        luma = f @ LUMA
        laplacian = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
        change = None if previous is None else float(np.abs(f - previous).mean())
        colour = f.mean(axis=(0, 1))
        stats.append(FrameStats((float(colour[0]), float(colour[1]), float(colour[2])), float(luma.mean()),
                                float(laplacian.var()), change))
        previous = f
    return stats


def segment_ranges(frames: int, segment_frames: Sequence[int]) -> list[range]:
    """Each segment's frame indices; frames past the listed segments count to the last one."""
    ends = np.minimum(np.cumsum(segment_frames), frames)
    starts = [0, *ends[:-1]]
    ranges = [range(int(s), int(e)) for s, e in zip(starts, ends)]
    if ranges and ranges[-1].stop < frames:
        ranges[-1] = range(ranges[-1].start, frames)
    return [r for r in ranges if len(r)]


def transition_flicker(stats: list[FrameStats], segment_frames: Sequence[int]) -> list[float]:
    """Per boundary between segments k and k+1: the change across it (last frame of k to first of k+1) over the median
    change between consecutive frames inside k and k+1. About 1 where a boundary looks like any other step of the
    video; a jump where segments meet reads well above 1 (5 means five times a typical step's change)."""
    ranges = segment_ranges(len(stats), segment_frames)
    ratios = []
    for before, after in zip(ranges, ranges[1:]):
        inside = [stats[i].change for i in (*before[1:], *after[1:])]
        typical = statistics.median(inside) if inside else 0.0
        across = stats[after.start].change
        ratios.append(across / typical if typical > 0 else (1.0 if across == 0 else math.inf))
    return ratios


@dataclass(frozen=True)
class Drift:
    colour: float
    """Distance of the segment's mean colour from the first segment's, levels (Euclidean over R, G, B)."""
    brightness: float
    """The segment's mean luma minus the first segment's, levels."""
    sharpness: float
    """The segment's mean Laplacian variance over the first segment's: below 1 has blurred."""


def drift(stats: list[FrameStats], segment_frames: Sequence[int]) -> list[Drift]:
    """Per segment, how far its colour, brightness and sharpness have moved from the first segment's."""
    ranges = segment_ranges(len(stats), segment_frames)

    def mean(r: range, f) -> np.ndarray:
        return np.mean([f(stats[i]) for i in r], axis=0)

    first = ranges[0]
    colour0, brightness0, sharp0 = mean(first, lambda s: s.colour), mean(first, lambda s: s.brightness), \
        mean(first, lambda s: s.sharpness)
    return [Drift(float(np.linalg.norm(mean(r, lambda s: s.colour) - colour0)),
                  float(mean(r, lambda s: s.brightness) - brightness0),
                  float(mean(r, lambda s: s.sharpness) / sharp0) if sharp0 > 0 else 1.0) for r in ranges]


SSIM_WINDOW = 7
SSIM_C1, SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _window_means(x: np.ndarray) -> np.ndarray:
    """Means over every SSIM_WINDOW x SSIM_WINDOW window (valid positions), from summed-area tables."""
    k = SSIM_WINDOW
    s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two frames' luma (Wang et al., 2004) over 7x7 uniform windows with the paper's
    constants, as scikit-image computes it by default: 1 for the same structure, lower as it departs."""
    x, y = (f.astype(np.float64) @ LUMA.astype(np.float64) for f in (a, b))
    mx, my = _window_means(x), _window_means(y)
    n = SSIM_WINDOW * SSIM_WINDOW
    unbiased = n / (n - 1)
    vx = (_window_means(x * x) - mx * mx) * unbiased
    vy = (_window_means(y * y) - my * my) * unbiased
    cxy = (_window_means(x * y) - mx * my) * unbiased
    index = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2))
    return float(index.mean())


def segment_ssim(a: Iterable[np.ndarray], b: Iterable[np.ndarray], segment_frames: Sequence[int]) -> list[float]:
    """Mean SSIM of the two videos' frames, per segment of the shorter."""
    values = [ssim(fa, fb) for fa, fb in zip(a, b)]
    return [float(np.mean([values[i] for i in r])) for r in segment_ranges(len(values), segment_frames)]


class VideoMeasures:
    """A video's flicker and drift, measured as its segments pass (a run's, or a finished video split in segments)."""

    def __init__(self):
        self.stats: list[FrameStats] = []
        self.segment_frames: list[int] = []
        self._last: np.ndarray | None = None

    def add(self, frames: np.ndarray) -> None:
        if len(frames):
            self.segment_frames.append(len(frames))
            self.stats += frame_stats(frames, self._last)
            self._last = frames[-1]

    def as_dict(self) -> dict:
        """What a recipe keeps: flicker at each boundary, each segment's drift from the first."""
        if not self.stats:
            return {}
        return dict(
            flicker=[round(r, 3) for r in transition_flicker(self.stats, self.segment_frames)],
            drift=[{k: round(v, 3) for k, v in vars(d).items()} for d in drift(self.stats, self.segment_frames)],
        )


def columns(measures: dict) -> dict:
    """A recipe's measures as one row's columns: the worst and the mean flicker, and the last segment's drift."""
    flicker, drifts = measures.get("flicker") or [], measures.get("drift") or []
    last = drifts[-1] if drifts else {}
    return dict(flicker_max=max(flicker, default=None),
                flicker_mean=round(float(np.mean(flicker)), 3) if flicker else None,
                drift_colour=last.get("colour"), drift_brightness=last.get("brightness"),
                drift_sharpness=last.get("sharpness"))
