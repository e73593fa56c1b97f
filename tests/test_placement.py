"""Memory tiers: which tier each GPU gets, what loading places where, and that every tier keeps the frames."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helios.engine import Engine
from helios.errors import BadInput, ModelUnavailable
from helios.fit.capability import Capabilities
from helios.fit.size import model_size
from helios.fit.tiers import GIB, ModelSize, crowded, gpu_bytes, host_bytes, resolve, workspace_bytes
from helios.loading import LoadOptions, load_checkpoint
from helios.model_cache import load_model
from helios.placement import Placement, Speedups, WeightForm
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline
from helios.tiny import TinySpec, build_tiny
from helios.weights.streaming import StreamedBlock, plain_tensors, streamed_positions

HELIOS_14B = ModelSize(
    blocks=40, block_bytes=int(0.703e9), block_linear_bytes=int(0.702e9), transformer_other_bytes=int(0.45e9),
    text_bytes=int(11.4e9), vae_bytes=int(0.25e9), text_passing_bytes=int(0.8e9), text_linear_bytes=int(9.26e9),
    text_embedding_bytes=int(2.1e9),
)
"""Helios-Distilled's sizes in bf16 (the transformer's 14B parameters, UMT5-XXL, the Wan VAE)."""


def gpu(free_gib, capability=(9, 0), host_gib=0, **kw):
    kw = {"triton": True, "cudnn_attention": True, **kw}
    return Capabilities(
        "cuda", "GPU", capability, int(free_gib * GIB), int(free_gib * GIB), host_free_bytes=int(host_gib * GIB), **kw
    )


@pytest.mark.parametrize("free_gib, capability, tier, fp8_matmul", [
    (79, (9, 0), "resident", False),      # H100 80 GB
    (47, (8, 6), "resident", False),      # A6000 48 GB
    (39, (8, 0), "text-offload", False),  # A100 40 GB
    (31, (12, 0), "bf16-streamed", False),  # RTX 5090 32 GB
    (23, (8, 9), "fp8", True),            # RTX 4090 24 GB
    (23, (8, 6), "fp8", False),           # RTX 3090 24 GB: FP8 storage, bf16 matmuls
    (15, (8, 9), "fp8-streamed", True),   # 16 GB
    (11, (8, 6), "fp8-streamed", False),  # 12 GB
    (7.5, (8, 9), "fp8-streamed", True),  # 8 GB (RTX 4060)
])
def test_auto_picks_the_fastest_tier_that_fits(free_gib, capability, tier, fp8_matmul):
    resolved = resolve(Placement(), gpu(free_gib, capability), HELIOS_14B)
    assert (resolved.tier.name, resolved.fp8_matmul) == (tier, fp8_matmul)
    assert gpu_bytes(resolved.tier, HELIOS_14B, resolved.resident_blocks) <= free_gib * GIB * 0.95
    assert any(f"chose {tier}" in note for note in resolved.notes)
    if resolved.tier.streamed_blocks:
        assert 0 <= resolved.resident_blocks < 40
        assert not resolved.cuda_graphs


def test_a_gpu_too_small_for_any_tier_is_refused_in_words():
    with pytest.raises(
        ModelUnavailable, match="needs at least .* GiB even in its fp8-streamed tier with requests of 256x448"
    ):
        resolve(Placement(), gpu(4), HELIOS_14B)


@pytest.mark.parametrize("free_gib, largest", [(6, (320, 576)), (5.5, (256, 448))])
def test_a_card_too_small_for_384x640_is_placed_for_the_largest_size_that_fits(free_gib, largest):
    """6 GB cards: the smallest tier's weights leave room for a smaller request only; larger ones are refused."""
    resolved = resolve(Placement(), gpu(free_gib), HELIOS_14B)
    assert resolved.tier.name == "fp8-streamed" and resolved.resident_blocks <= 1
    assert resolved.fits(*largest) and not resolved.fits(384, 640)
    assert f"requests of {largest[0]}x{largest[1]} at most" in " ".join(resolved.notes)
    assert resolved.default_size == largest, "the size the load warms the VAE for"
    assert resolve(Placement(), gpu(7.5), HELIOS_14B).fits(384, 640), "an 8 GB card runs the page's default size"
    import app

    assert app.largest_fitting(SimpleNamespace(fit=resolved)) == f"{largest[0]}x{largest[1]}", "the page's default"


def test_the_app_refuses_in_words_a_forced_tier_that_leaves_room_for_no_size(capsys):
    import app

    placement = resolve(Placement(weights=WeightForm(memory="fp8-streamed")), gpu(2.5), HELIOS_14B)
    model = SimpleNamespace(is_tiny=False, device=torch.device("cuda"), fit=placement)
    assert app.serve(None, SimpleNamespace(model=model), "banner") == 1
    error = capsys.readouterr().err
    assert (
        error.startswith("error: no size the page offers fits") and error.count("\n") == 1 and "--memory auto" in error
    )


@pytest.mark.parametrize("free_gib, host_gib", [(79, 8), (39, 16), (23, 16), (15, 24), (11, 24), (7.5, 24)])
def test_auto_picks_a_tier_that_fits_the_host_memory_too(free_gib, host_gib):
    """Desktops with 12-16 GB cards mostly have 32 GB of RAM, of which about 24 GiB is free for us."""
    resolved = resolve(Placement(), gpu(free_gib, host_gib=host_gib), HELIOS_14B)
    assert host_bytes(resolved.tier, HELIOS_14B, resolved.resident_blocks) <= host_gib * GIB
    assert resolved.host_budget == host_gib * GIB
    assert f"{host_gib} GiB host memory" in resolved.notes[0]


def test_a_host_too_small_for_the_tier_the_gpu_needs_is_refused_in_words():
    with pytest.raises(
        ModelUnavailable, match="holds .* GiB in host memory and 16.0 GiB is available: close other programs"
    ):
        resolve(Placement(), gpu(11, host_gib=16), HELIOS_14B)


@pytest.mark.parametrize("attention, caps, fp8, kept, note", [
    ("cudnn", gpu(79, cudnn_attention=False), False, False, "cuDNN's fused attention needs cuDNN"),
    ("cudnn", gpu(79, cudnn_attention=True), False, True, None),
    ("native", gpu(79, cudnn_attention=False), False, True, None),
    ("fp8", gpu(79, (9, 0)), False, False, "FP8 attention needs Triton and FP8 weights"),
    ("fp8", gpu(79, (9, 0)), True, True, None),
    ("fp8", gpu(79, (8, 6)), True, False, "FP8 tensor cores"),
    ("flash", gpu(79, (9, 0)), False, False, "flash-attn package"),
])
def test_attention_is_one_setting_whose_backends_declare_what_they_need(attention, caps, fp8, kept, note):
    placement = Placement(weights=WeightForm(memory="fp8" if fp8 else "resident"), faster=Speedups(attention=attention))
    resolved = resolve(placement, caps, HELIOS_14B)
    assert resolved.placement.faster.attention == (attention if kept else "native")
    assert any(note in n for n in resolved.notes) if note else not any("attention off" in n for n in resolved.notes)


def test_an_unknown_attention_is_refused_in_words():
    with pytest.raises(ModelUnavailable, match="Unknown attention 'sage': choose one of cudnn, native, flash, fp8"):
        resolve(Placement(faster=Speedups(attention="sage")), gpu(79), HELIOS_14B)


@pytest.mark.parametrize("field, caps, note", [
    ("vae_kernels", gpu(79, triton=False), "Triton kernels"),
    ("compile_blocks", gpu(79, zero_gpu=True), "no runtime compile on ZeroGPU"),
])
def test_each_fast_path_falls_back_with_its_reason(field, caps, note):
    resolved = resolve(Placement(), caps, HELIOS_14B)
    assert not getattr(resolved.placement.faster, field)
    assert any(note in n for n in resolved.notes)


def test_fp8_without_fp8_tensor_cores_falls_back_to_weight_only_and_graphs_off_on_zero_gpu():
    resolved = resolve(Placement(weights=WeightForm(fp8=True)), gpu(79, (8, 0), zero_gpu=True), HELIOS_14B)
    assert resolved.tier.fp8_weights and not resolved.fp8_matmul and not resolved.cuda_graphs
    assert any("weight-only" in n for n in resolved.notes) and any("CUDA graphs off" in n for n in resolved.notes)


def test_sizes_are_read_from_the_checkpoint_headers(tiny_checkpoint):
    size = model_size(tiny_checkpoint("distilled"))
    transformer = load_model(str(tiny_checkpoint("distilled"))).transformer
    assert size.blocks == len(transformer.blocks)
    assert size.block_bytes == sum(p.numel() for p in transformer.blocks[0].parameters()) * 2


@pytest.fixture(scope="module")
def five_blocks(tmp_path_factory):
    """Odd, so the first and last streamed blocks share a slot across the wrap."""
    return build_tiny(tmp_path_factory.mktemp("tiny-5"), TinySpec(flavour="distilled", layers=5))


CPU_FP32 = dict(device="cpu", dtype="float32", vae_dtype="float32")


def frames_of(model) -> np.ndarray:
    settings = GenerationSettings(height=64, width=64, num_frames=66, pyramid_steps=(1, 1, 1), seed=2)
    run = Run(Engine(model), GenerationRequest(PromptTimeline.single("a heron"), settings))
    return np.concatenate([s.frames for s in run.segments()])


def placed_bytes(module: torch.nn.Module) -> int:
    """Bytes of the tensors the model computes with: on a GPU, what it holds there."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in plain_tensors(module)}
    return sum(storages.values())


@pytest.mark.parametrize("resident", [0, 1, 20, 32, 38, 39, 40])
def test_streamed_blocks_are_spread_among_the_resident_ones(resident):
    """Each copy then overlaps the resident blocks before it: runs of resident blocks differ by at most one."""
    positions = streamed_positions(40, resident)
    assert len(set(positions)) == 40 - resident and all(0 <= p < 40 for p in positions)
    if positions:
        assert positions[-1] == 39
        gaps = [b - a - 1 for a, b in zip([-1, *positions], positions)]
        assert max(gaps) - min(gaps) <= 1


def test_loading_under_a_faked_capacity_places_no_more_than_the_tier_allows(five_blocks):
    size = model_size(five_blocks)
    block = size.block(fp8=True)
    tier = resolve(Placement(weights=WeightForm(memory="fp8-streamed")), gpu(1), size).tier
    caps = Capabilities(
        "cpu", free_bytes=int((gpu_bytes(tier, size, 1) + block // 2 + workspace_bytes(384, 640)) / 0.95) + 1
    )
    model = load_checkpoint(str(five_blocks), LoadOptions(**CPU_FP32), caps)
    assert model.fit.tier.name == "fp8-streamed" and model.fit.resident_blocks == 1
    streamed = [b for b in model.transformer.blocks if isinstance(b, StreamedBlock)]
    assert len(streamed) == 4
    on_device = placed_bytes(model.transformer) + placed_bytes(
        model.vae
    )  # the text encoder is off the GPU in this tier
    assert on_device <= gpu_bytes(model.fit.tier, size, 1) * 2 + block, "fp32 here: twice the bf16 bytes"
    assert model.block_stream.bytes_moved == model.block_stream.block_bytes, "only the first streamed block so far"


def test_a_request_too_large_for_the_memory_left_is_refused_up_front(five_blocks):
    size = model_size(five_blocks)
    tier = resolve(Placement(weights=WeightForm(memory="fp8-streamed")), gpu(1), size).tier
    room = gpu_bytes(tier, size, 0) + workspace_bytes(64, 64) + 2**20
    model = load_checkpoint(
        str(five_blocks),
        LoadOptions(**CPU_FP32, placement=Placement(weights=WeightForm(memory="fp8-streamed"))),
        Capabilities("cpu", free_bytes=int(room / 0.95) + 1),
    )
    engine = Engine(model)
    small = GenerationSettings(height=64, width=64, num_frames=33, pyramid_steps=(1, 1, 1))
    assert len(list(Run(engine, GenerationRequest(PromptTimeline.single("x"), small)).segments())) == 1
    with pytest.raises(BadInput, match="128x128 needs about 1.2 GiB .* choose a smaller resolution"):
        Run(engine, GenerationRequest(PromptTimeline.single("x"), GenerationSettings(height=128, width=128)))


@pytest.mark.parametrize("tier, exact", [("bf16-streamed", True), ("fp8", False), ("fp8-streamed", False)])
def test_every_tier_keeps_the_frames(five_blocks, tier, exact):
    resident = frames_of(load_model(str(five_blocks), LoadOptions(**CPU_FP32)))
    model = load_model(str(five_blocks), LoadOptions(**CPU_FP32, placement=Placement(weights=WeightForm(memory=tier))))
    ours = frames_of(model)
    assert ours.shape == resident.shape and resident.std() > 5
    if exact:
        np.testing.assert_array_equal(ours, resident)
        calls = 6 + 3  # forwards: the amplified first segment has twice the steps
        assert model.block_stream.bytes_moved == model.block_stream.block_bytes * (1 + 5 * calls), (
            "each block once a call"
        )
    else:
        psnr = 10 * np.log10(255**2 / np.mean((ours.astype(float) - resident) ** 2))
        assert psnr > 25, f"FP8 weights moved the frames too far ({psnr:.1f} dB)"


@pytest.mark.parametrize("memory, linears", [("fp8", "torchao"), ("fp8-streamed", "ours")])
def test_fp8_tiers_use_torchao_where_it_was_measured_faster(memory, linears):
    resolved = resolve(Placement(weights=WeightForm(memory=memory)), gpu(79, (9, 0)), HELIOS_14B)
    assert resolved.placement.weights.fp8_linears == linears
    assert resolved.placement.faster.attention == "cudnn", "slower than cuDNN's bf16 attention on the H100: opt-in"


def test_models_stay_warm_together_while_neither_costs_the_other_its_tier():
    """On 80 GB the bf16 model (resident, ~41 GiB with its workspace) leaves room for its FP8 form as it would be alone;
    a second bf16 model would only get the text-offload tier, so the first must go."""
    alone = gpu(79)
    beside_bf16 = gpu(79 - 41)
    assert not crowded(Placement(weights=WeightForm(fp8=True)), HELIOS_14B, beside_bf16, alone)
    assert crowded(Placement(), HELIOS_14B, beside_bf16, alone)
    assert not crowded(Placement(), HELIOS_14B, gpu(78), alone), "a little less memory, the same tier and blocks"
    assert crowded(Placement(), HELIOS_14B, gpu(1), alone), "nothing fits beside them at all"


def test_a_bf16_side_never_gets_fp8_weights_where_memory_is_short():
    """auto on 24 GiB picks FP8 weights; bf16 asked for streams bf16 blocks instead, however few stay resident, and
    where none can it is refused."""
    assert resolve(Placement(), gpu(24), HELIOS_14B).tier.fp8_weights
    bf16 = resolve(Placement(weights=WeightForm(never_fp8=True)), gpu(24), HELIOS_14B)
    assert bf16.tier.name == "bf16-streamed" and not bf16.tier.fp8_weights and 0 < bf16.resident_blocks < 30
    with pytest.raises(ModelUnavailable, match="even in its bf16-streamed tier"):
        resolve(Placement(weights=WeightForm(never_fp8=True)), gpu(4), HELIOS_14B)


def test_the_cpu_preview_keeps_fp8_weights_when_asked():
    fit = resolve(Placement(weights=WeightForm(fp8=True)), Capabilities("cpu"), HELIOS_14B)
    assert fit.tier.name == "cpu+fp8" and fit.tier.fp8_weights and not fit.fp8_matmul
    assert fit.placement.weights.fp8_linears == "ours"
    assert resolve(Placement(), Capabilities("cpu"), HELIOS_14B).tier.name == "cpu"


def test_the_least_recently_used_model_goes_first_and_a_kept_one_never(monkeypatch):
    from helios import model_cache

    monkeypatch.setattr(model_cache, "_models", {})
    monkeypatch.setattr(model_cache, "_crowded", lambda source, options: True)
    cpu = dict(device="cpu")
    a = model_cache.load_model("tiny", LoadOptions(**cpu))
    b = model_cache.load_model("tiny", LoadOptions(**cpu, vae_dtype="float32", dtype="float32"))
    assert list(model_cache._models.values()) == [b], "loading b released a"
    c = model_cache.load_model("tiny", LoadOptions(**cpu, dtype="bfloat16"), keep=(b,))
    assert list(model_cache._models.values()) == [b, c]
    monkeypatch.setattr(model_cache, "_crowded", lambda source, options: False)
    d = model_cache.load_model("tiny", LoadOptions(**cpu))
    assert d is not a and list(model_cache._models.values()) == [b, c, d], "what fits stays warm"
    assert model_cache.load_model("tiny", LoadOptions(**cpu, dtype="bfloat16")) is c
    assert list(model_cache._models.values())[-1] is c, "a model used is the most recently used"
