"""On a GPU: a run that really runs out of GPU memory ends in words, gives back what it held, and the engine serves
the next run. Skipped without CUDA."""

import pytest
import torch

from helios.engine import Engine, EngineOptions
from helios.errors import OutOfMemory
from helios.loading import LoadOptions
from helios.model_cache import load_model
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
MIB = 2**20


def run(engine, height, width):
    settings = GenerationSettings(height=height, width=width, num_frames=66, pyramid_steps=(1, 1, 1))
    return [s.index for s in Run(engine, GenerationRequest(PromptTimeline.single("a lighthouse"), settings)).segments()]


def fill_gpu() -> list[torch.Tensor]:
    """Take every byte the allocator can still get, largest pieces first."""
    torch.cuda.empty_cache()
    filler = []
    for chunk in (1024 * MIB, 64 * MIB, 4 * MIB, MIB):
        while True:
            try:
                filler.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                break
    return filler


def test_a_real_out_of_memory_frees_the_run_and_the_next_run_works(tiny_checkpoint):
    model = load_model(str(tiny_checkpoint("distilled")), LoadOptions(device="cuda"))
    engine = Engine(model, EngineOptions(cuda_graphs=False))
    assert run(engine, 384, 640) == [0, 1]
    torch.cuda.synchronize()
    held_before = torch.cuda.memory_allocated()

    filler = fill_gpu()
    with pytest.raises(OutOfMemory, match="ran out of memory in segment 1 of 2"):
        run(engine, 384, 640)
    assert torch.cuda.memory_allocated() - held_before - sum(t.numel() for t in filler) < 16 * MIB
    del filler

    assert run(engine, 384, 640) == [0, 1]
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - held_before < 16 * MIB
