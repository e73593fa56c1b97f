"""`python tests/frame_source_app.py APP_ARGS`: the app with its engine replaced by a frame source, for measuring what
the page does with segments that come at a set rate: a request's first prompt names the rate ("60 fps"), and a
segment of moving colour bands with a little grain (cheap to make, not free to encode) is made every 33 / rate
seconds, its denoising steps paced as the request's plan has them."""

import functools
import itertools
import re
import runpy
import sys
import time
from pathlib import Path

import numpy as np
import torch

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))

from helios.engine import Denoised, Engine  # noqa: E402
from helios.limits import FRAMES_PER_SEGMENT  # noqa: E402
from helios.segment import StepProgress, Stopwatch  # noqa: E402


def paced_denoise(self, request, plan, cue_at, on_step):
    """Steps at the rate's pace (a later segment's steps take 33 / rate s), so a run's first segment, which may have
    twice the steps, takes as much longer as the engine's would."""
    prompt = request.timeline.prompts[0]  # the first prompt sets the rate: a live stream's steers keep it
    rate = float(re.search(r"(\d+(\.\d+)?)\s*fps", prompt).group(1)) if "fps" in prompt else 24.0
    s = request.settings
    bands(s.height, s.width)
    step_s = FRAMES_PER_SEGMENT / rate / plan.steps_in_segment(False)
    due = time.perf_counter()
    first, total = request.first_segment, request.total_segments
    latents = torch.zeros(1, 1, 1, s.height, s.width)
    for k in range(first, total) if total is not None else itertools.count(first):
        steps = plan.steps_in_segment(k == 0)
        on_step(StepProgress(k, total, 0, steps))
        watch = Stopwatch(torch.device("cpu"))
        watch.mark()
        for step in range(1, steps + 1):
            due += step_s
            time.sleep(max(0.0, due - time.perf_counter()))
            on_step(StepProgress(k, total, step, steps))
        watch.mark()
        mix, strengths = cue_at(k)
        yield Denoised(k, mix, tuple(strengths.items()), latents + k, watch, latents, latents, torch.zeros(1))


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
