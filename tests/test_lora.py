"""LoRA adapters: the frames diffusers' loader gives, strengths keyframed along the timeline without recompiling, and
every bad adapter refused in words before a run."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from benchmarks.random_lora import write_lora
from helios.engine import Engine
from helios.errors import BadInput
from helios.lora.file import LoraFile
from helios.model_cache import load_model
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline, TimelineEntry

SIZE, PROMPT = 64, "a lighthouse in a storm"


@pytest.fixture(scope="module")
def engine():
    return Engine(load_model("tiny"))


@pytest.fixture(scope="module")
def style(engine, tmp_path_factory):
    return write_lora(tmp_path_factory.mktemp("lora") / "style.safetensors", engine.model.transformer)


def frames(engine, loras=(), timeline=None, segments=1) -> list[np.ndarray]:
    """Each segment's frames."""
    settings = GenerationSettings(height=SIZE, width=SIZE, num_frames=33 * segments, seed=3, pyramid_steps=(1, 1, 1))
    request = GenerationRequest(timeline or PromptTimeline.single(PROMPT), settings, loras=tuple(loras))
    return [seg.frames for seg in Run(engine, request).segments()]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def rows(*entries) -> PromptTimeline:
    return PromptTimeline(tuple(TimelineEntry(start, PROMPT, lora=tuple(lora.items())) for start, lora in entries), 0)


@pytest.mark.parametrize("mode", ["t2v", "i2v", "v2v"])
@pytest.mark.parametrize("flavour", ["distilled", "base"])
def test_same_frames_as_diffusers_load_lora_weights(flavour, mode, tiny_checkpoint, sample_image, sample_video,
                                                    tmp_path):
    from diffusers import HeliosPipeline, HeliosPyramidPipeline

    folder = tiny_checkpoint(flavour)
    model = load_model(str(folder))
    lora = write_lora(tmp_path / "style.safetensors", model.transformer, metadata=dict(r=4, lora_alpha=2))
    context = dict(image=sample_image if mode == "i2v" else None, video=sample_video if mode == "v2v" else None)
    distilled = flavour == "distilled"
    settings = GenerationSettings(height=SIZE, width=SIZE, num_frames=33, seed=3, guidance_scale=1.0 if distilled
                                  else 5.0, pyramid_steps=(1, 1, 1) if distilled else None, num_inference_steps=None
                                  if distilled else 3)
    request = GenerationRequest(PromptTimeline.single(PROMPT), settings, loras=(LoraFile.of(lora, 0.7),), **context)
    ours = np.concatenate([seg.frames for seg in Run(Engine(model), request).segments()])

    pipe = (HeliosPyramidPipeline if distilled else HeliosPipeline).from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(lora), adapter_name="style")
    pipe.set_adapters(["style"], [0.7])
    kwargs = dict(prompt=PROMPT, height=SIZE, width=SIZE, num_frames=33, generator=torch.Generator().manual_seed(3),
                  output_type="np", guidance_scale=settings.guidance_scale)
    kwargs.update(dict(pyramid_num_inference_steps_list=[1, 1, 1], is_amplify_first_chunk=True) if distilled
                  else dict(num_inference_steps=3))
    if mode == "i2v":
        kwargs["image"] = sample_image
    if mode == "v2v":
        from PIL import Image

        kwargs["video"] = [Image.fromarray(f) for f in sample_video]
    if not distilled:  # diffusers 0.42.1 calls .view() on the transformer's non-contiguous output (test_parity.py)
        forward = pipe.transformer.forward
        pipe.transformer.forward = lambda *a, **k: (forward(*a, **k)[0].contiguous(),)
    ref = (pipe(**kwargs).frames[0] * 255).round().astype(np.uint8)
    assert ours.shape == ref.shape
    without = np.concatenate([seg.frames for seg in Run(Engine(model), GenerationRequest(
        PromptTimeline.single(PROMPT), settings, **context)).segments()])
    assert np.abs(ours.astype(int) - without.astype(int)).mean() > 2, "the adapter must change the frames"
    off = np.abs(ours.astype(int) - ref.astype(int)) > 1
    assert off.mean() <= 0.001, f"{off.mean():.4%} of pixels differ by more than one level"


def test_strength_zero_is_exactly_no_adapter_and_wan_keys_read_alike(engine, style, tmp_path):
    plain = frames(engine)
    assert same(frames(engine, [LoraFile.of(style, 0.0)]), plain)
    on = frames(engine, [LoraFile.of(style, 1.0)])
    assert not same(on, plain)
    wan = write_lora(tmp_path / "wan-style.safetensors", engine.model.transformer, keys="wan")
    assert same(frames(engine, [LoraFile.of(wan, 1.0)]), on)
    assert same(frames(engine), plain), "a run without adapters after one with them"


def test_a_strength_keyframed_at_segment_3_leaves_segments_1_and_2_alone(engine, style):
    plain = frames(engine, segments=4)
    keyed = frames(engine, [LoraFile.of(style)], rows((0, {"style": 0.0}), (2, {"style": 1.0})), segments=4)
    assert all(np.array_equal(keyed[k], plain[k]) for k in (0, 1))
    assert all(np.abs(keyed[k].astype(int) - plain[k].astype(int)).mean() > 2 for k in (2, 3))


def test_strengths_fade_as_prompts_do_and_unnamed_adapters_keep_their_files_strength():
    timeline = PromptTimeline((TimelineEntry(0, "a", lora=(("style", 0.0),)), TimelineEntry(2, "b", lora=(
        ("style", 1.0), ("grain", 0.5)))), crossfade=1)
    assert [round(timeline.strengths(k)["style"], 3) for k in range(4)] == [0.0, 0.0, 0.5, 1.0]
    assert [round(timeline.strengths(k)["grain"], 3) for k in range(4)] == [0.0, 0.0, 0.25, 0.5]
    again = PromptTimeline.from_json(timeline.to_json())
    assert again == timeline and PromptTimeline.from_csv(timeline.to_csv(), crossfade=1) == timeline
    assert "lora:style" in timeline.to_csv().splitlines()[0]


def test_one_compiled_block_serves_every_block_and_strengths_or_a_like_adapter_never_recompile(tmp_path, engine,
                                                                                               style):
    """Dynamo's graphs, counted on the CPU with the eager backend over the blocks compiled as the engine compiles them
    (one compiled block for all): installing an adapter recompiles once, not once per block (a guard on each layer's
    identity would), and what would make inductor recompile makes this count grow too."""
    from torch._dynamo.utils import counters

    from helios.tiny import build_tiny

    other = write_lora(tmp_path / "other.safetensors", engine.model.transformer, seed=1)
    reference = frames(engine, [LoraFile.of(other, 0.5)], segments=2)
    compiled = Engine(load_model(str(build_tiny(tmp_path / "tiny"))))
    torch._dynamo.reset()
    compiled.model.transformer.compile_repeated_blocks(backend="eager", fullgraph=True)
    frames(compiled, segments=2)
    plain = counters["stats"]["unique_graphs"]
    frames(compiled, [LoraFile.of(style)], rows((0, {"style": 0.2}), (1, {"style": 0.9})), segments=2)
    assert counters["stats"]["unique_graphs"] == plain + 1, "one recompile for the layers' new class, for all blocks"
    frames(compiled, [LoraFile.of(style)], rows((0, {"style": -0.4}), (1, {"style": 1.3})), segments=2)
    swapped = frames(compiled, [LoraFile.of(other, 0.5)], segments=2)
    assert counters["stats"]["unique_graphs"] == plain + 1, "a strength or a like adapter recompiled"
    assert same(swapped, reference)


def test_bad_adapters_are_refused_in_words(engine, style, tmp_path):
    def refused(loras=(), timeline=None) -> str:
        with pytest.raises(BadInput) as error:
            Run(engine, GenerationRequest(timeline or PromptTimeline.single(PROMPT), GenerationSettings(
                height=SIZE, width=SIZE, num_frames=33), loras=tuple(loras)))
        return str(error.value)

    def file_refused(path, *args) -> str:
        with pytest.raises(BadInput) as error:
            frames(engine, [LoraFile.of(path, *args)])
        return str(error.value)

    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "weights.safetensors"))
    assert "no LoRA weight" in file_refused(tmp_path / "weights.safetensors")
    assert "no LoRA weight" in refused([LoraFile.of(tmp_path / "weights.safetensors")]), "refused as the run is made"
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    assert "not a LoRA file" in file_refused(tmp_path / "broken.safetensors")
    other_model = write_lora(tmp_path / "elsewhere.safetensors", engine.model.transformer)
    save_file({k.replace("blocks.", "layers."): v for k, v in _tensors(other_model).items()}, str(other_model))
    assert "(0 matched" in file_refused(other_model)
    partial = _tensors(style) | {"transformer.blocks.0.attn3.to_q.lora_A.weight": torch.zeros(4, 32),
                                 "transformer.blocks.0.attn3.to_q.lora_B.weight": torch.zeros(32, 4)}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    assert "1 of its 21 layers match no linear layer of this model (20 matched; blocks.0.attn3.to_q" in file_refused(
        tmp_path / "partial.safetensors")
    with pytest.raises(BadInput, match="must be a .safetensors"):
        LoraFile.parse(str(tmp_path / "style.pt"))
    with pytest.raises(BadInput, match="between -2 and 2"):
        LoraFile.parse(f"{style}:7")
    with pytest.raises(BadInput, match="the strength after ':' must be a number, like style.safetensors:0.8"):
        LoraFile.parse(f"{style}:strong")
    assert "'grain', which is not loaded" in refused([LoraFile.of(style)], rows((0, {"grain": 0.5})))
    assert "between -2 and 2" in refused([LoraFile.of(style)], rows((0, {"style": -3})))
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "style.safetensors").write_bytes(style.read_bytes())
    assert "share a name" in refused([LoraFile.of(style), LoraFile.of(copy / "style.safetensors")])
    assert LoraFile.parse(f"{style}:0.5") == LoraFile(style, 0.5)
    need = engine.model.lora._bytes([engine.model.lora._layers_of(LoraFile.of(style))])
    engine.model.lora.use(())  # installed, the same adapter would need no more memory
    with pytest.MonkeyPatch.context() as room:
        room.setattr("helios.lora.side_path.available_memory", lambda: need // 2)
        assert f"need {need / 2**30:.2f} GiB of host memory and " in refused([LoraFile.of(style)])


def _tensors(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_timeline_rows_name_their_adapters_in_json_and_csv(tmp_path):
    text = json.dumps({"crossfade": 0, "entries": [{"start": 0, "prompt": "a", "lora": {"style": 0.8}}]})
    assert PromptTimeline.from_json(text).strengths(0) == {"style": 0.8}
    csv = "id,prompt_index,prompt,lora:style\n0,0,a,0.8\n0,2,b,\n0,3,c,0.1\n"
    timeline = PromptTimeline.from_csv(csv, crossfade=0)
    assert [timeline.strengths(k)["style"] for k in (0, 2, 3)] == [0.8, 0.8, 0.1]
    with pytest.raises(BadInput, match="malformed"):
        PromptTimeline.from_csv("id,prompt_index,prompt,lora:style\n0,0,a,strong\n")


def test_the_cli_records_each_adapter_and_its_recipe_asks_for_the_same_file(tmp_path, cli, engine, style):
    fast = ["--model", "tiny", "--height", "64", "--width", "64", "--steps", "1,1,1", "--frames", "33"]
    first = tmp_path / "first.npy"
    made = cli(*fast, "--prompt", "rain", "--lora", f"{style}:0.5", "--out", first)
    assert made.returncode == 0, made.stderr
    recipe = json.loads((tmp_path / "first.json").read_text())
    assert recipe["loras"] == [dict(file="style.safetensors", sha256=LoraFile.of(style).sha256, strength=0.5)]
    refused = cli("--recipe", tmp_path / "first.json", "--out", tmp_path / "again.npy")
    assert refused.returncode == 2 and "pass that file with --lora" in refused.stderr
    assert not (tmp_path / "again.npy").exists()
    again = cli("--recipe", tmp_path / "first.json", "--lora", str(style), "--out", tmp_path / "again.npy")
    assert again.returncode == 0, again.stderr
    assert np.array_equal(np.load(tmp_path / "again.npy"), np.load(first))
    bad = cli(*fast, "--prompt", "rain", "--lora", f"{style}:9", "--out", tmp_path / "x.npy")
    assert bad.returncode == 2 and "between -2 and 2" in bad.stderr and bad.stderr.count("\n") == 1
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "weights.safetensors"))
    bad = cli(*fast, "--prompt", "rain", "--lora", str(tmp_path / "weights.safetensors"), "--out", tmp_path / "x.mp4")
    assert bad.returncode == 2 and "no LoRA weight" in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
    assert not list(tmp_path.glob("x.*")), "refused before the run: no file"


def test_the_app_carries_its_adapters_into_generate_the_editor_and_live_faders(tmp_path, engine, style):
    import threading

    from helios.studio.form import Form, rows_from_timeline
    from helios.studio.sessions import Sessions
    from helios.studio.settings import StudioSettings

    ready = threading.Event()
    ready.set()
    sessions = Sessions(engine, ready, StudioSettings(loras=(LoraFile.of(style, 0.5),)), root=tmp_path)
    rows = [[0, PROMPT, ""], [1, PROMPT, "1.5"]]
    _, updates = sessions.generate("me", Form(rows, "segments", 0, None, None, 2, "1,1,1", 3, "64x128"))
    for _ in updates:
        pass
    run = sessions.get("me").run
    assert [run.timeline.strengths(k) for k in (0, 1)] == [{"style": 0.0}, {"style": 1.5}]
    assert rows_from_timeline(run.timeline, ("style",))[0] == [[0, PROMPT, ""], [1, PROMPT, 1.5]]
    recipe = json.loads(sessions.get("me").video.with_suffix(".json").read_text())
    assert recipe["loras"][0]["strength"] == 0.5 and recipe["timeline"]["entries"][1]["lora"] == {"style": 1.5}

    live = sessions.live_start("me", Form([[0, PROMPT]], "segments", 0, None, None, 1, "1,1,1", 3, "64x128"), [])
    with pytest.raises(BadInput, match="between -2 and 2"):
        live.fade("style", 5, 0)
    for update in live.updates():
        if update.clip and live.stats.segments == 1:
            landing = live.fade("style", 1.25, 0)
            with pytest.raises(BadInput, match="'grain', which is not loaded"):
                live.fade("grain", 1.0, 0)
        if live.steers and live.steers[-1].segment is not None:
            live.pause()
    assert live.steers[-1].segment == landing and live.steers[-1].lora == (("style", 1.25),)
    assert live.timeline.strengths(landing) == {"style": 1.25} and live.timeline.mix(landing) == ((PROMPT, 1.0),)
    live.close()


def test_compare_a_with_the_adapter_against_b_without(tmp_path, engine, style):
    import threading

    from helios.studio.compare import SideSettings
    from helios.studio.form import Form
    from helios.studio.models import SideModel
    from helios.studio.sessions import Sessions
    from helios.studio.settings import StudioSettings

    ready = threading.Event()
    ready.set()
    sessions = Sessions(engine, ready, StudioSettings(loras=(LoraFile.of(style),)), root=tmp_path)
    form = Form([], "segments", 0, None, None, 1, "", 0, "64x128")
    off = [[0, PROMPT, "0"]]
    comparison = sessions.compare("me", form, SideSettings(off, 0, "1,1,1", 5), SideSettings(off, 0, "1,1,1", 5))
    list(comparison.updates())
    assert comparison.per_segment()[0][1] == "identical", "strength 0 on both sides"
    comparison = sessions.compare("me", form, SideSettings([[0, PROMPT, "1"]], 0, "1,1,1", 5),
                                  SideSettings(off, 0, "1,1,1", 5, SideModel(engine="diffusers")))
    list(comparison.updates())
    assert [r.metrics.state for r in comparison.runs] == ["done", "done"]
    assert comparison.per_segment()[0][1] != "identical", "A has the adapter, diffusers' B has none"
    with pytest.raises(BadInput, match="strengths to 0 on the diffusers side"):
        sessions.compare("me", form, SideSettings(off, 0, "1,1,1", 5),
                         SideSettings([[0, PROMPT, "1"]], 0, "1,1,1", 5, SideModel(engine="diffusers")))


def test_a_session_adds_its_own_adapters_checked_as_they_arrive(tmp_path, engine, style):
    import threading

    from helios.studio.form import Form
    from helios.studio.sessions import Sessions
    from helios.studio.settings import StudioSettings
    from helios.studio.timeline_editor import add_row, with_adapters

    ready = threading.Event()
    ready.set()
    sessions = Sessions(engine, ready, StudioSettings(loras=(LoraFile.of(style),)), root=tmp_path)
    grain = write_lora(tmp_path / "grain.safetensors", engine.model.transformer, seed=2)
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(BadInput, match="no LoRA weight"):
        sessions.set_loras("me", [str(tmp_path / "weights.safetensors")], 1.0)
    with pytest.raises(BadInput, match="share a name"):
        sessions.set_loras("me", [str(style)], 1.0)
    assert [f.name for f in sessions.set_loras("me", [str(grain)], 0.4)] == ["grain"]
    assert sessions.adapters("me") == ("style", "grain") and sessions.adapters("you") == ("style",)
    rows = with_adapters([[0, PROMPT, "0"], [1, PROMPT]], sessions.adapters("me"), kept=1)
    assert rows == [[0, PROMPT, "0", ""], [1, PROMPT, "", ""]], "the editor gains a blank column for the upload"
    assert add_row(rows)[-1] == [3.0, "", "", ""]
    rows[1][3] = "1.5"
    _, updates = sessions.generate("me", Form(rows, "segments", 0, None, None, 2, "1,1,1", 3, "64x128"))
    list(updates)
    run = sessions.get("me").run
    assert [(f.name, f.strength) for f in run.request.loras] == [("style", 1.0), ("grain", 0.4)]
    assert run.timeline.strengths(1) == {"style": 0.0, "grain": 1.5}, "the upload's column keyframes it"
    _, updates = sessions.generate("you", Form([[0, PROMPT, "0"]], "segments", 0, None, None, 1, "1,1,1", 3, "64x128"))
    list(updates)
    assert [f.name for f in sessions.get("you").run.request.loras] == ["style"], "another session has its own"


def test_adapters_run_on_the_fp8_form_too(style):
    from helios.loading import LoadOptions
    from helios.placement import Placement, WeightForm

    fp8 = Engine(load_model("tiny", LoadOptions(device="cpu", placement=Placement(weights=WeightForm(fp8=True)))))
    assert fp8.model.fit.tier.fp8_weights
    plain = frames(fp8)
    assert same(frames(fp8, [LoraFile.of(style, 0.0)]), plain)
    assert np.abs(frames(fp8, [LoraFile.of(style, 1.0)])[0].astype(int) - plain[0].astype(int)).mean() > 2


def test_adapters_reach_streamed_blocks_and_are_refused_with_aot_blocks(tmp_path, engine, style):
    """Streamed blocks wrap the block a LoRA key names: the adapter must reach them too (streaming runs on the CPU
    too, its copies then synchronous)."""
    from dataclasses import replace

    from helios.tiny import build_tiny
    from helios.weights.streaming import apply_streaming

    streamed = Engine(load_model(str(build_tiny(tmp_path / "tiny"))))
    apply_streaming(streamed.model.transformer.blocks, [0, 1], torch.device("cpu"))
    keyed = rows((0, {"style": 0.0}), (1, {"style": 1.0}))
    assert same(frames(streamed, [LoraFile.of(style)], keyed, segments=2),
                frames(engine, [LoraFile.of(style)], keyed, segments=2))
    fit = engine.model.fit
    engine.model.fit = replace(fit, placement=replace(fit.placement, faster=replace(fit.placement.faster, aot="aot")))
    try:
        with pytest.raises(BadInput, match="compiled ahead of time, without LoRA layers: start with --aot off"):
            frames(engine, [LoraFile.of(style)])
    finally:
        engine.model.fit = fit


def test_a_suite_compares_a_configuration_with_an_adapter_against_one_without(tmp_path, cli, style):
    (tmp_path / "prompts.txt").write_text(f"{PROMPT}\n")
    done = cli("--prompts", tmp_path / "prompts.txt", "--common", "--model tiny --height 64 --width 64 --frames 33",
               "--config", "plain=--steps 1,1,1", "--config", f"styled=--steps 1,1,1 --lora {style}:0.8",
               "--baseline", "plain", "--out", tmp_path / "suite", command="suite")
    assert done.returncode == 0, done.stderr
    recipe = json.loads((tmp_path / "suite" / "styled" / "p001.json").read_text())
    assert recipe["loras"][0]["strength"] == 0.8 and not json.loads(
        (tmp_path / "suite" / "plain" / "p001.json").read_text())["loras"]
    import csv

    rows = list(csv.DictReader((tmp_path / "suite" / "suite.csv").read_text().splitlines()))
    assert [(r["config"], r["loras"]) for r in rows] == [("plain", ""), ("styled", "style.safetensors:0.8")]
    assert float(rows[1]["psnr_vs_baseline"]) < 40, "the adapter changed the frames"
