"""Weights read from the checkpoint's files straight to their place: the values diffusers' and transformers' own
loaders give, and host memory held to its budget."""

import pytest
import torch

from helios.errors import ModelUnavailable
from helios.fit.capability import Capabilities
from helios.fit.size import model_size
from helios.fit.tiers import GIB, HOST_BASE, host_bytes, resolve
from helios.loading import LoadOptions, load_checkpoint
from helios.placement import Placement, WeightForm
from helios.weights.files import WeightFiles


def tensors(module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters(remove_duplicate=False)) | dict(module.named_buffers())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_files_fill_the_model_with_what_the_libraries_load(tiny_checkpoint, dtype):
    import diffusers
    import transformers

    folder = tiny_checkpoint("distilled")
    ours = load_checkpoint(str(folder), LoadOptions(device="cpu", dtype=dtype, vae_dtype="float32"))
    theirs = dict(
        transformer=diffusers.HeliosTransformer3DModel.from_pretrained(
            folder, subfolder="transformer", dtype=getattr(torch, dtype)
        ),
        text_encoder=transformers.UMT5EncoderModel.from_pretrained(
            folder / "text_encoder", dtype=getattr(torch, dtype)
        ),
    )
    for part, reference in theirs.items():
        a, b = tensors(getattr(ours, part)), tensors(reference)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name].float(), b[name].float()), name
            if not name.endswith("history_key_scale"):  # ours takes the model's dtype (weights/place.py)
                assert a[name].dtype == b[name].dtype, name
    assert ours.text_encoder.encoder.embed_tokens.weight is ours.text_encoder.shared.weight


def cpu_with_host(host: int) -> Capabilities:
    return Capabilities("cpu", free_bytes=64 * GIB, host_free_bytes=host)


def test_a_load_past_its_host_budget_stops_in_words(tiny_checkpoint, monkeypatch):
    """fp32 on the CPU pins twice the bf16 bytes the tier was chosen by: the ledger, not the estimate, stops it."""
    monkeypatch.setattr("helios.fit.tiers.PINNED_SLACK", 0)  # a GiB would hide a tiny model's bytes
    folder = tiny_checkpoint("distilled")
    size = model_size(folder)
    placement = Placement(weights=WeightForm(memory="fp8-streamed"))
    tier = resolve(placement, cpu_with_host(64 * GIB), size)
    needed = host_bytes(tier.tier, size, tier.resident_blocks)
    with pytest.raises(ModelUnavailable, match="more than the .* GiB of host memory allowed"):
        load_checkpoint(
            str(folder), LoadOptions(device="cpu", dtype="float32", placement=placement), cpu_with_host(needed + 1)
        )
    model = load_checkpoint(
        str(folder), LoadOptions(device="cpu", dtype="bfloat16", placement=placement), cpu_with_host(needed + 2 * 2**27)
    )
    assert model.fit.host_budget == needed + 2 * 2**27


def test_a_forced_tier_the_host_cannot_hold_is_refused_before_any_weight_is_read(tiny_checkpoint, monkeypatch):
    def read(*args):
        raise AssertionError("a weight was read")

    monkeypatch.setattr(WeightFiles, "_read", read)
    with pytest.raises(ModelUnavailable, match="GiB in host memory and .* is available"):
        load_checkpoint(
            str(tiny_checkpoint("distilled")),
            LoadOptions(device="cpu", placement=Placement(weights=WeightForm(memory="fp8-streamed"))),
            cpu_with_host(HOST_BASE),
        )


@pytest.mark.parametrize("tier", ["text-offload", "fp8-streamed"])
def test_an_offloaded_text_encoder_looks_tokens_up_in_host_memory(tiny_checkpoint, tier):
    """Group offloading onloads every parameter it finds: the table must not be one of the lookup's. FP8 tiers keep
    it in int8 rows: each value within 1/254 of its row's largest (and bf16's rounding) of the stored one."""
    import transformers

    folder = tiny_checkpoint("distilled")
    model = load_checkpoint(
        str(folder), LoadOptions(device="cpu", placement=Placement(weights=WeightForm(memory=tier)))
    )
    lookup = model.text_encoder.encoder.embed_tokens
    assert list(lookup.parameters()) == [] and list(lookup.buffers()) == []
    assert (lookup.rows.dtype == torch.int8) == (tier == "fp8-streamed")
    stored = transformers.UMT5EncoderModel.from_pretrained(folder / "text_encoder").shared.weight.detach()
    ids = torch.randint(0, len(stored), (2, 64))
    ours, theirs = lookup(ids), stored[ids].to(model.dtype)
    if tier == "text-offload":
        assert torch.equal(ours, theirs)
        return
    bound = theirs.abs().amax(-1, keepdim=True) / 254 * 1.001 + theirs.abs() * torch.finfo(model.dtype).eps
    assert ((ours - theirs).abs() <= bound).all() and (ours != theirs).any()


def test_small_tiers_keep_every_text_encoder_layer_in_int8_rows_with_the_prompts_meaning(tiny_checkpoint):
    """Half of bf16's host bytes for the text encoder's layers, and a prompt's embeddings still those of the bf16
    layers (the tiny model's random weights: within 2% where FP8 rows measured 5-12% on UMT5-XXL shapes)."""
    from torch import nn

    from helios.text import PromptEncoder
    from helios.weights.int8 import Int8Linear

    folder = str(tiny_checkpoint("distilled"))
    wide = load_checkpoint(
        folder, LoadOptions(device="cpu", placement=Placement(weights=WeightForm(memory="text-offload")))
    )
    small = load_checkpoint(
        folder, LoadOptions(device="cpu", placement=Placement(weights=WeightForm(memory="fp8-streamed")))
    )
    layers = small.text_encoder.encoder.block
    assert not any(type(m) is nn.Linear for m in layers.modules())
    assert all(m.weight.dtype == torch.int8 for m in layers.modules() if isinstance(m, Int8Linear))
    assert sum(isinstance(m, Int8Linear) for m in layers.modules()) == sum(
        isinstance(m, nn.Linear) for m in wide.text_encoder.encoder.block.modules()
    )
    for prompt in ("a heron at dawn", "neon signs reflected in puddles, rain at night"):
        ours, theirs = (
            PromptEncoder(m.tokenizer, m.text_encoder, m.device, torch.float32).encode(prompt) for m in (small, wide)
        )
        assert 0 < ((ours - theirs).norm() / theirs.norm()).item() < 0.02
