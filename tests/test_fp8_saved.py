"""The FP8 form saved once: a later FP8 load reads it instead of the checkpoint's blocks and gives the same frames; a
form made for another checkpoint, torch or torchao, or a damaged one, is never used."""

import copy
import json
import shutil

import numpy as np
import pytest
import torch

from helios.cache import fp8_form_cache
from helios.engine import Engine
from helios.loading import LoadOptions, load_checkpoint
from helios.placement import Placement, WeightForm
from helios.read_ahead import checkpoint_chunks
from helios.recipe import model_hash
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.stored import stored_tensors
from helios.timeline import PromptTimeline
from helios.weights import files, fp8_saved

FP8 = LoadOptions(device="cpu", placement=Placement(weights=WeightForm(fp8=True)))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HELIOS_STUDIO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def frames(model) -> np.ndarray:
    settings = GenerationSettings(height=64, width=64, num_frames=33, seed=5, pyramid_steps=(1, 1, 1))
    request = GenerationRequest(PromptTimeline.single("a kite over dunes"), settings)
    return np.concatenate([s.frames for s in Run(Engine(model), request).segments()])


def save_form(model) -> tuple[fp8_saved.Fp8FormKey, object]:
    """What `python -m helios compile --fp8` saves."""
    form = fp8_saved.form_key(model.folder, model.fit, model.dtype)
    folder = fp8_form_cache() / form.name
    fp8_saved.save(model.transformer.blocks, form, model.folder, folder)
    return form, folder


def load_counting_bytes(folder, monkeypatch) -> tuple[object, dict[str, int]]:
    """The model, and the bytes its load read: of the checkpoint's blocks, of the rest, and of a saved form."""
    blocks = {(s.file, s.offset) for name, s in stored_tensors(folder / "transformer").items()
              if name.startswith("blocks.")}
    read, plain = dict(blocks=0, rest=0, form=0), files._read_into

    def counting(file, offset, target):
        where = "form" if file.name.startswith("block-") else "blocks" if (file, offset) in blocks else "rest"
        read[where] += target.numel()
        plain(file, offset, target)

    monkeypatch.setattr(files, "_read_into", counting)
    model = load_checkpoint(str(folder), FP8)
    monkeypatch.setattr(files, "_read_into", plain)
    return model, read


def test_an_fp8_load_from_the_saved_form_reads_none_of_the_blocks_bf16_bytes_and_makes_the_same_frames(
    tiny_checkpoint, cache, monkeypatch
):
    folder = tiny_checkpoint("distilled")
    quantized, before = load_counting_bytes(folder, monkeypatch)
    assert "quantized at load: python -m helios compile --fp8 saves them once" in quantized.describe()
    _, form_folder = save_form(quantized)
    saved, after = load_counting_bytes(folder, monkeypatch)
    assert f"FP8 weights from the saved form at {form_folder}" in saved.describe()
    assert before["form"] == 0 and before["blocks"] > 0
    assert after["blocks"] == 0 and after["rest"] == before["rest"]
    assert after["form"] < 0.6 * before["blocks"], (before, after)
    assert np.array_equal(frames(quantized), frames(saved))


def test_a_form_made_for_another_torchao_or_damaged_is_not_used_and_the_banner_says_why(
    tiny_checkpoint, cache, monkeypatch
):
    folder = tiny_checkpoint("distilled")
    model = load_checkpoint(str(folder), FP8)
    form, form_folder = save_form(model)
    meta = json.loads((form_folder / fp8_saved.META).read_text())
    meta["key"]["torchao"] = "0.1.0"
    (form_folder / fp8_saved.META).write_text(json.dumps(meta))
    assert f"made for torchao 0.1.0 (this run: {form.torchao})" in load_checkpoint(str(folder), FP8).describe()
    save_form(model)
    (form_folder / fp8_saved.block_file(1)).unlink()
    banner = load_checkpoint(str(folder), FP8).describe()
    assert f"the saved FP8 form at {form_folder} is damaged" in banner


def test_a_fine_tune_with_the_same_headers_has_another_key(tiny_checkpoint, tmp_path):
    """The recipe's model hash reads headers alone; the saved form's key reads samples of the values too."""
    folder = shutil.copytree(tiny_checkpoint("distilled"), tmp_path / "tuned")
    (weights,) = (folder / "transformer").glob("*.safetensors")
    data = bytearray(weights.read_bytes())
    values = 8 + int.from_bytes(data[:8], "little")
    data[values::4] = bytes(b ^ 1 for b in data[values::4])  # each float's lowest bit: a tuning's small change
    weights.write_bytes(bytes(data))
    original = tiny_checkpoint("distilled")
    assert model_hash(folder) == model_hash(original)
    fit = load_checkpoint(str(original), FP8).fit
    assert fp8_saved.form_key(folder, fit, torch.float32) != fp8_saved.form_key(original, fit, torch.float32)


def test_torchaos_fp8_weights_come_back_from_their_parts(tiny_checkpoint, tmp_path):
    """torchao's Float8Tensor is saved as its values and scales and filled back into the same layout."""
    pytest.importorskip("torchao")
    from helios.model_cache import load_model
    from helios.weights.fp8 import apply_float8

    block = load_model("tiny").transformer.blocks[0]
    converted = copy.deepcopy(block)
    convert = lambda b: apply_float8(b, fp8_matmul=False, library="torchao")  # noqa: E731
    convert(converted)
    form = fp8_saved.Fp8FormKey("c", "t", "a", "fp8-torchao-weight-only", "float32")
    fp8_saved.save(torch.nn.ModuleList([converted]), form, tmp_path, tmp_path / "form")
    empty = torch.nn.ModuleList([copy.deepcopy(block).to("meta")])
    reader = fp8_saved.SavedFp8(tmp_path / "form", convert, files.HostLedger(None, 0))
    reader.fill(empty[0], "blocks.0.", torch.device("cpu"), lambda name, dtype: torch.float32)
    ours, theirs = fp8_saved.flat_tensors(empty[0]), fp8_saved.flat_tensors(converted)
    assert ours.keys() == theirs.keys() and any(t.dtype == torch.float8_e4m3fn for t in ours.values())
    assert all(torch.equal(ours[n].float(), theirs[n].float()) for n in ours)


def test_an_fp8_starts_read_ahead_reads_the_saved_form_in_place_of_the_transformer(tiny_checkpoint, cache):
    folder = tiny_checkpoint("distilled")
    model = load_checkpoint(str(folder), FP8)
    assert "fp8" not in {c.file.parent.parent.name for c in checkpoint_chunks(folder, fp8_form_cache())}
    _, form_folder = save_form(model)
    read = {c.file.parent for c in checkpoint_chunks(folder, fp8_form_cache())}
    assert form_folder in read and folder / "transformer" not in read and folder / "vae" in read
    assert folder / "transformer" in {c.file.parent for c in checkpoint_chunks(folder)}, "a bf16 start reads it"
