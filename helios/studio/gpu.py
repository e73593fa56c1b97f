"""ZeroGPU: a GPU is lent per call to functions marked `spaces.GPU`, for a time budget computed from the request."""

from __future__ import annotations

import inspect
import os
from typing import Callable

from helios.errors import BadInput
from helios.limits import Limits, parse_steps

SECONDS_PER_STEP = 0.6
SECONDS_PER_SEGMENT = 0.5
START_SECONDS = 30


def import_spaces_first() -> None:
    """On a ZeroGPU Space `spaces` must patch torch before anything asks about CUDA: the model is then chosen and
    placed for the GPU each `spaces.GPU` call lends, not for a machine without one (the tiny preview)."""
    if os.environ.get("SPACES_ZERO_GPU"):
        import spaces  # noqa: F401


def gpu_seconds(segments, steps, limits: Limits) -> int:
    """The budget for a request: its denoising steps at a measured-order cost, plus the GPU state's start; never
    more than the largest request `limits` allow. `steps` may list each run's steps (a comparison makes two)."""
    try:
        segments = min(max(int(segments or 1), 1), limits.max_segments)
    except (TypeError, ValueError, OverflowError):
        segments = 1
    work = sum(segments * (_steps_per_segment(s, limits) * SECONDS_PER_STEP + SECONDS_PER_SEGMENT)
               for s in (steps if isinstance(steps, list) else [steps]))
    return int(START_SECONDS + work)


def _steps_per_segment(steps, limits: Limits) -> int:
    try:
        return sum(min(max(int(n), 1), limits.max_steps) for n in parse_steps(steps))
    except (BadInput, TypeError, ValueError, OverflowError):
        return 6


def on_gpu(handler: Callable, limits: Limits, seconds: float | None = None) -> Callable:
    """`spaces.GPU` with the duration read from the handler's own `segments` and `steps` arguments (or `steps_a`
    and `steps_b`), by name, or `seconds` (a live stream's leg) plus the start; anywhere but a ZeroGPU Space it
    changes nothing."""
    try:
        import spaces
    except ImportError:
        return handler
    if seconds is not None:
        return spaces.GPU(duration=int(START_SECONDS + seconds))(handler)
    signature = inspect.signature(handler)

    def duration(*args, **kwargs) -> int:
        named = signature.bind_partial(*args, **kwargs).arguments
        steps = [v for k, v in named.items() if k == "steps" or k.startswith("steps_")]
        return gpu_seconds(named.get("segments"), steps or [None], limits)

    return spaces.GPU(duration=duration)(handler)
