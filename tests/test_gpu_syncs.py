"""On a GPU: the denoising loop never makes the host wait for the GPU, so kernels stay queued back to back.
Counted with torch's sync debug mode: a longer video must not add a single wait. Skipped without CUDA."""

import warnings

import pytest
import torch

from helios.engine import Engine, EngineOptions
from helios.loading import LoadOptions
from helios.model_cache import load_model
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline
from helios.tiny import TinySpec, build_tiny

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def host_waits(engine, segments: int) -> int:
    settings = GenerationSettings(height=128, width=128, num_frames=33 * segments, pyramid_steps=(2, 2, 2), seed=3)
    request = GenerationRequest(PromptTimeline.single("a harbour at dawn"), settings)
    waits = 0

    def count(message, *_):
        nonlocal waits
        waits += "synchroniz" in str(message)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = count
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in Run(engine, request).segments():
                pass
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return waits


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_more_segments_add_no_host_waits(tmp_path, cuda_graphs):
    checkpoint = build_tiny(tmp_path, TinySpec(flavour="distilled", layers=2))
    engine = Engine(load_model(str(checkpoint), LoadOptions(device="cuda")), EngineOptions(cuda_graphs=cuda_graphs))
    host_waits(engine, 1)
    two, four = host_waits(engine, 2), host_waits(engine, 4)
    print(f"host waits: {two} for 2 segments, {four} for 4")
    assert four == two
