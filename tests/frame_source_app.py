"""`python tests/frame_source_app.py APP_ARGS`: the app with its engine replaced by a frame source, for measuring what
the page does with segments that come at a set rate: a request's first prompt names the rate ("60 fps"), and a
segment of moving colour bands (cheap to make, not free to encode) is made every 33 / rate seconds from the start."""

import functools
import re
import runpy
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))

from helios.engine import Engine  # noqa: E402
from helios.limits import FRAMES_PER_SEGMENT  # noqa: E402
from helios.run import Denoised  # noqa: E402
from helios.segment import StepProgress, Stopwatch  # noqa: E402


def paced_denoise(self, run):
    prompt = run.request.timeline.prompts[0]
    rate = float(re.search(r"(\d+(\.\d+)?)\s*fps", prompt).group(1)) if "fps" in prompt else 24.0
    s = run.request.settings
    bands(s.height, s.width)
    start = time.perf_counter()
    first, total = run.request.first_segment, run.total_segments
    latents = torch.zeros(1, 1, 1, s.height, s.width)
    for k in range(first, total):
        run.step(StepProgress(k, total, 0, 1))
        watch = Stopwatch(torch.device("cpu"))
        watch.mark()
        time.sleep(max(0.0, start + (k - first + 1) * FRAMES_PER_SEGMENT / rate - time.perf_counter()))
        run.step(StepProgress(k, total, 1, 1))
        watch.mark()
        yield Denoised(k, run.timeline.mix(k), latents + k, watch, latents, latents, torch.zeros(1), threading.Event())


@functools.cache
def bands(height: int, width: int) -> np.ndarray:
    t = np.arange(FRAMES_PER_SEGMENT)[:, None, None]
    x, y = np.arange(width)[None, None, :], np.arange(height)[None, :, None]
    shape = (FRAMES_PER_SEGMENT, height, width)
    colours = [np.broadcast_to(c % 256, shape) for c in (x * 2 + t * 3, y * 2 + t * 5, x + y + t * 7)]
    noise = np.random.default_rng(0).integers(0, 4, (*shape, 3))
    return (np.stack(colours, axis=-1) + noise).clip(0, 255).astype(np.uint8)


def banded_frames(self, latents, watch):
    """Made once per size, then shifted per segment: the source spends its time waiting, not computing."""
    k = int(latents.flatten()[0])
    _, _, _, height, width = latents.shape
    frames = np.roll(bands(height, width), 8 * k, axis=2)
    watch.mark()
    return torch.from_numpy(frames)


Engine.denoise, Engine.decode = paced_denoise, banded_frames
sys.argv = ["app.py", *sys.argv[1:]]
runpy.run_path(str(root / "app.py"), run_name="__main__")
