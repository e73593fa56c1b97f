"""ZeroGPU: a GPU is lent per call to functions marked `spaces.GPU`, for a time budget computed from the request."""

from __future__ import annotations

import inspect
from typing import Callable

from helios.errors import BadInput
from helios.limits import Limits, parse_steps

SECONDS_PER_STEP = 0.6
SECONDS_PER_SEGMENT = 0.5
START_SECONDS = 30


def gpu_seconds(segments, steps, limits: Limits) -> int:
    """The budget for a request: its denoising steps at a measured-order cost, plus the GPU state's start; never
    more than the largest request `limits` allow."""
    try:
        per_segment = sum(min(max(int(n), 1), limits.max_steps) for n in parse_steps(steps))
    except (BadInput, TypeError, ValueError, OverflowError):
        per_segment = 6
    try:
        segments = min(max(int(segments or 1), 1), limits.max_segments)
    except (TypeError, ValueError, OverflowError):
        segments = 1
    return int(START_SECONDS + segments * (per_segment * SECONDS_PER_STEP + SECONDS_PER_SEGMENT))


def on_gpu(handler: Callable, limits: Limits) -> Callable:
    """`spaces.GPU` with the duration read from the handler's own `segments` and `steps` arguments, by name;
    anywhere but a ZeroGPU Space it changes nothing."""
    try:
        import spaces
    except ImportError:
        return handler
    signature = inspect.signature(handler)

    def duration(*args, **kwargs) -> int:
        named = signature.bind_partial(*args, **kwargs).arguments
        return gpu_seconds(named.get("segments"), named.get("steps"), limits)

    return spaces.GPU(duration=duration)(handler)
