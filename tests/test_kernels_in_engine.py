"""With the Triton kernels switched into the transformer blocks, the engine's frames stay those of the unfused
blocks (tiny checkpoints with history-key amplification, fp32; Triton's interpreter on a CPU)."""

import numpy as np
import pytest

from helios.engine import Engine
from helios.loading import LoadOptions
from helios.model_cache import load_model
from helios.placement import Placement, Speedups
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline


def frames(model, **steps):
    settings = GenerationSettings(height=64, width=64, num_frames=66, seed=5, **steps)
    request = GenerationRequest(PromptTimeline.single("a red kite over dunes"), settings)
    return np.concatenate([s.frames for s in Run(Engine(model), request).segments()])


@pytest.mark.parametrize("flavour, steps", [
    ("base", dict(num_inference_steps=2)),  # classifier-free guidance: a batch of two
    ("distilled", dict(pyramid_steps=(1, 1, 1))),  # three resolutions, amplified first segment
])
def test_kernels_keep_the_frames(tiny_checkpoint, flavour, steps):
    """Two segments, so the history tokens (and their amplified keys) are in play."""
    options = LoadOptions(dtype="float32", vae_dtype="float32")
    model = load_model(str(tiny_checkpoint(flavour)), options)
    fused = load_model(
        str(tiny_checkpoint(flavour)),
        LoadOptions(dtype="float32", vae_dtype="float32", placement=Placement(faster=Speedups(kernels=True))),
    )
    plain, ours = frames(model, **steps), frames(fused, **steps)
    assert plain.shape == ours.shape and plain.std() > 5
    close = np.abs(plain.astype(int) - ours.astype(int)) <= 1
    assert close.mean() >= 0.999, f"only {close.mean():.4%} of pixels within one level"
