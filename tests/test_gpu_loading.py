"""On a GPU: weights read from the files land where each tier says (the GPU, or pinned host memory) and every tier
makes the frames the resident one makes. Skipped without CUDA."""

import numpy as np
import pytest
import torch

from helios.engine import Engine
from helios.loading import LoadOptions, load_checkpoint
from helios.placement import Placement, Speedups, WeightForm
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline
from helios.weights.streaming import StreamedBlock, plain_tensors

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def frames(model) -> np.ndarray:
    settings = GenerationSettings(height=64, width=128, num_frames=66, pyramid_steps=(1, 1, 1), seed=3)
    run = Run(Engine(model), GenerationRequest(PromptTimeline.single("a heron at dawn"), settings))
    return np.concatenate([s.frames for s in run.segments()])


@pytest.mark.parametrize("tier", ["text-offload", "fp8", "fp8-streamed"])
def test_each_tier_places_its_weights_and_keeps_the_frames(tiny_checkpoint, tier):
    folder = str(tiny_checkpoint("distilled"))
    resident = load_checkpoint(
        folder,
        LoadOptions(
            device="cuda",
            placement=Placement(weights=WeightForm(memory="resident"), faster=Speedups(compile_blocks=False)),
        ),
    )
    for t in (*resident.transformer.parameters(), *resident.transformer.buffers(), *resident.text_encoder.parameters()):
        assert t.is_cuda, "the resident tier holds everything on the GPU, buffers made at build included"
    model = load_checkpoint(
        folder,
        LoadOptions(
            device="cuda", placement=Placement(weights=WeightForm(memory=tier), faster=Speedups(compile_blocks=False))
        ),
    )
    streamed = [b for b in model.transformer.blocks if isinstance(b, StreamedBlock)]
    for block in streamed:
        assert all(t.is_cuda for t in plain_tensors(block.block)), "streamed blocks compute from their GPU slots"
    if streamed:
        assert all(t.is_pinned() for host in model.block_stream.host for t in host), "copied in from pinned memory"
    lookup = model.text_encoder.encoder.embed_tokens
    assert not lookup.rows.is_cuda and list(lookup.parameters()) == [], "tokens are looked up in host memory"
    ours, theirs = frames(model), frames(resident)
    psnr = 10 * np.log10(255**2 / max(np.mean((ours.astype(float) - theirs) ** 2), 1e-12))
    assert psnr > (60 if tier == "text-offload" else 25), f"{tier}: {psnr:.1f} dB from the resident tier's frames"


@pytest.mark.parametrize("tier", ["text-offload", "fp8", "fp8-streamed"])
def test_the_text_encoder_leaves_the_gpu_after_encoding(tiny_checkpoint, tier):
    """Its layers pass through the GPU for each new prompt; none may stay there for the rest of the run (FP8 layers
    once did, as buffers that group offloading left behind: 3.4 GiB of a 16 GiB card's)."""
    model = load_checkpoint(
        str(tiny_checkpoint("distilled")),
        LoadOptions(
            device="cuda", placement=Placement(weights=WeightForm(memory=tier), faster=Speedups(compile_blocks=False))
        ),
    )
    frames(model)
    layers = model.text_encoder.encoder.block
    on_gpu = [n for n, t in (*layers.named_parameters(), *layers.named_buffers()) if t.is_cuda]
    assert not on_gpu, f"{tier}: {len(on_gpu)} text-encoder tensors stayed on the GPU, e.g. {on_gpu[:3]}"


def test_the_load_leaves_no_gpu_memory_cached_beside_the_weights(tiny_checkpoint):
    """The VAE decodes once while the weights load (its one-time compile and autotuning); what that decode's stream
    cached must go back, or a small card would lose it to requests."""
    torch.cuda.empty_cache()
    model = load_checkpoint(
        str(tiny_checkpoint("distilled")),
        LoadOptions(
            device="cuda",
            placement=Placement(weights=WeightForm(memory="resident"), faster=Speedups(compile_blocks=False)),
        ),
    )
    assert model.fit.default_size == (384, 640)
    cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    assert cached < 64 * 2**20, f"{cached / 2**20:.0f} MiB left cached by the load"


def test_the_load_warms_the_vae_on_the_thread_every_decode_runs_on(tiny_checkpoint):
    """cuDNN keeps its autotuned convolution plans per thread: a warm-up decode on any other thread would leave the
    first segment's decode to tune them all again."""
    import threading

    from diffusers.models.autoencoders.autoencoder_kl_wan import WanDecoder3d

    threads = []

    def record(module, args):
        if isinstance(getattr(module, "_orig_mod", module), WanDecoder3d):
            threads.append(threading.current_thread().name)

    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        model = load_checkpoint(
            str(tiny_checkpoint("distilled")),
            LoadOptions(
                device="cuda",
                placement=Placement(weights=WeightForm(memory="resident"), faster=Speedups(compile_blocks=False)),
            ),
        )
        warmed = len(threads)
        frames(model)
    finally:
        hook.remove()
    assert warmed > 0 and len(threads) > warmed, "the load decodes once, and the run decodes"
    assert len(set(threads)) == 1 and threads[0].startswith("helios-decode"), set(threads)
