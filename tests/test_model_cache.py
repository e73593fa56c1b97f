
"""Models kept warm together: another weight form made from a loaded checkpoint without reading its files again, and
what a load will do said before it is done."""

import os

import numpy as np
import pytest

from helios import model_cache
from helios.engine import Engine
from helios.errors import ModelUnavailable
from helios.loading import LoadOptions
from helios.model_cache import load_model, plan_load, release
from helios.placement import Placement, WeightForm
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline
from helios.weights import files

FP8 = LoadOptions(device="cpu", placement=Placement(weights=WeightForm(fp8=True)))
BF16 = LoadOptions(device="cpu")


def frames(model) -> np.ndarray:
    settings = GenerationSettings(height=64, width=64, num_frames=33, pyramid_steps=(1, 1, 1), seed=4)
    run = Run(Engine(model), GenerationRequest(PromptTimeline.single("a heron lands"), settings))
    return np.concatenate([s.frames for s in run.segments()])


@pytest.fixture
def cache(monkeypatch):
    monkeypatch.setattr(model_cache, "_models", {})
    monkeypatch.setattr(model_cache, "_last_load", {})
    return model_cache


@pytest.fixture
def disk_reads(monkeypatch):
    """Every read of a checkpoint's weight bytes, by file name."""
    reads = []
    read = files._read_into
    monkeypatch.setattr(
        files, "_read_into", lambda file, offset, target: reads.append(file.parent.name) or read(file, offset, target)
    )
    return reads


def test_the_fp8_form_of_a_loaded_checkpoint_reads_nothing_from_disk_and_makes_the_same_frames(
    cache, tiny_checkpoint, disk_reads
):
    folder = str(tiny_checkpoint("distilled"))
    full = load_model(folder, BF16)
    assert set(disk_reads) == {"transformer", "text_encoder"}
    disk_reads.clear()
    fp8 = load_model(folder, FP8)
    assert disk_reads == [], "the FP8 form was copied from the loaded weights"
    assert fp8.fit.tier.fp8_weights and not full.fit.tier.fp8_weights
    assert fp8.text_encoder is full.text_encoder and fp8.vae is full.vae, "shared, not copied"
    assert list(cache._models.values()) == [full, fp8], "both stay warm"
    copied = frames(fp8)

    release(full)
    release(fp8)
    from_files = load_model(folder, FP8)
    assert "transformer" in disk_reads
    np.testing.assert_array_equal(frames(from_files), copied)
    assert not np.array_equal(frames(load_model(folder, BF16)), copied), "FP8 weights change the frames"


def test_a_load_is_described_before_it_is_done(cache, tiny_checkpoint):
    folder = str(tiny_checkpoint("distilled"))
    first = plan_load(folder, BF16)
    assert not first.warm and first.read_bytes > 0 and first.seconds is None, "no rate measured yet"
    assert "MB from disk" in first.describe()
    full = load_model(folder, BF16)
    assert plan_load(folder, BF16).warm and "no load" in plan_load(folder, BF16).describe()
    fp8 = plan_load(folder, FP8)
    assert fp8.copied_from == full.label and fp8.read_bytes == 0 and "no disk read" in fp8.describe()
    assert fp8.tier == "cpu+fp8"
    other = plan_load(str(tiny_checkpoint("mid")), BF16)
    assert other.read_bytes > 0 and other.seconds is not None and other.seconds > 0, "at the rate of the load measured"


def test_a_checkpoint_not_on_this_machine_is_said_to_be_downloaded(cache):
    assert plan_load("someone/not-downloaded-here", BF16).download


def test_a_load_that_cannot_fit_is_refused_before_it_starts(cache, tiny_checkpoint):
    with pytest.raises(ModelUnavailable, match="bf16 was asked for"):
        plan_load(str(tiny_checkpoint("distilled")), LoadOptions(
            device="cpu", placement=Placement(weights=WeightForm(memory="fp8", never_fp8=True))))


def test_a_checkpoint_is_measured_once_until_its_files_change(tiny_checkpoint, monkeypatch):
    """The cache asks for the checkpoint's size at every load and for every model it might release."""
    from helios import stored
    from helios.fit import size

    folder = tiny_checkpoint("distilled")
    headers = []
    read = stored.stored_tensors
    monkeypatch.setattr(size, "stored_tensors", lambda f: headers.append(f.name) or read(f))
    size._measured.cache_clear()
    first = size.model_size(folder)
    assert size.model_size(folder) == first and headers == ["transformer", "text_encoder", "vae"]
    vae = next((folder / "vae").glob("*.safetensors"))
    os.utime(vae, ns=(vae.stat().st_atime_ns, vae.stat().st_mtime_ns + 1))
    assert size.model_size(folder) == first and len(headers) == 6, "a rewritten file is measured again"
