"""Ahead-of-time compiled blocks on the CPU (AOTInductor builds CPU code too): a first start builds the package beside
its run and switches to it, a run from the folder makes the frames of the just-in-time run, and a folder made for
anything else is refused in words, the run falling back to compiling just in time. One build (~15 s on 2 cores, in a
child process) serves the module."""

import dataclasses
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch

from helios.aot_beside import AotBeside
from helios.engine import Engine
from helios.faster.aot import AotForward, aot_key
from helios.fit.capability import Capabilities
from helios.fit.here import decide
from helios.fit.size import model_size
from helios.fit.tiers import workspace_bytes
from helios.loading import LoadOptions, load_checkpoint
from helios.placement import Placement, Speedups
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.timeline import PromptTimeline
from helios.tiny import build_tiny

pytestmark = pytest.mark.slow

PROMPT, SIZE = "a kite over the dunes", ("--height", "64", "--width", "128")
RUN = ("--model", "tiny", "--prompt", PROMPT, *SIZE, "--frames", "66", "--steps", "1,1,1", "--seed", "5")


def segments(model, after_first=lambda: None) -> np.ndarray:
    """RUN's request, three segments, in this process; `after_first` runs between the first and the second."""
    settings = GenerationSettings(height=64, width=128, num_frames=99, seed=5, pyramid_steps=(1, 1, 1))
    made = []
    for segment in Run(Engine(model), GenerationRequest(PromptTimeline.single(PROMPT), settings)).segments():
        made.append(segment.frames)
        if len(made) == 1:
            after_first()
    return np.concatenate(made).astype(int)


@pytest.fixture(scope="module")
def first_start(tmp_path_factory):
    """A first start's run on the tiny model: its blocks uncompiled while their package is built beside it (as a
    first start on a GPU does; the CPU preview's blocks are never compiled, so it is asked for here), the build
    awaited after the first segment; and the eager run's frames. In a cache of its own: the worker's would give
    every later test's tiny model these blocks."""
    folder = build_tiny(tmp_path_factory.mktemp("tiny"))
    eager = segments(load_checkpoint(str(folder), LoadOptions(device="cpu")))
    model = load_checkpoint(str(folder), LoadOptions(device="cpu"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HELIOS_STUDIO_CACHE", str(tmp_path_factory.mktemp("cache")))
        model.fit = dataclasses.replace(
            model.fit, build_aot=aot_key(model.transformer.config, model.dtype, model.fit, model.capabilities)
        )
        model.aot_beside = AotBeside(model.transformer, model.fit, model.dtype, model.device)
    switched = segments(model, lambda: model.aot_beside.wait(600))
    return model, eager, switched


@pytest.fixture(scope="module")
def folder(first_start, tmp_path_factory):
    model, _, _ = first_start
    out = tmp_path_factory.mktemp("aot") / "blocks"
    shutil.copytree(model.aot_beside.folder, out)
    return out


def test_a_first_start_runs_uncompiled_then_switches_to_the_package_built_beside_it(first_start):
    model, eager, switched = first_start
    assert "built" in model.aot_beside.log.read_text()
    assert all(isinstance(b.forward, AotForward) for b in model.transformer.blocks)
    assert f"blocks switched to their ahead-of-time package, {model.aot_beside.folder}" in model.describe()
    assert switched.shape == eager.shape == (97, 64, 128, 3) and eager.std() > 1
    assert np.abs(switched - eager).max() <= 1


def test_a_first_start_on_a_gpu_builds_beside_and_later_starts_or_other_asks_do_not(tiny_checkpoint, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("HELIOS_STUDIO_CACHE", str(tmp_path))
    folder = tiny_checkpoint("distilled")
    config = json.loads((folder / "transformer" / "config.json").read_text())
    h100 = Capabilities("cuda", compute_capability=(9, 0), free_bytes=80 * 2**30, triton=True, cudnn_attention=True)

    def fit(caps=h100, **faster):
        return decide(Placement(faster=Speedups(**faster)), caps, model_size(folder), config, torch.bfloat16)

    first = fit(aot="auto")
    assert first.build_aot is not None and not first.placement.faster.compile_blocks
    assert "built beside the first run" in "; ".join(first.notes)
    assert fit(aot="jit").build_aot is None and fit(aot="jit").placement.faster.compile_blocks
    assert fit(aot="auto", kernels=True).build_aot is None, "AoT blocks are built without our kernels"
    assert fit(dataclasses.replace(h100, ranks=2), aot="auto").build_aot is None
    assert fit(dataclasses.replace(h100, zero_gpu=True), aot="auto").build_aot is None, "no runtime compile there"
    tight = fit(dataclasses.replace(h100, free_bytes=int((workspace_bytes(384, 640) + 2**29) / 0.95)), aot="auto")
    assert tight.build_aot is None and tight.placement.faster.compile_blocks
    assert "too little GPU memory to build their AoT package beside the run" in "; ".join(tight.notes)
    (tmp_path / "aot" / first.build_aot.name).mkdir(parents=True)
    (tmp_path / "aot" / first.build_aot.name / "helios-aot.json").write_text(
        json.dumps(dict(key=dataclasses.asdict(first.build_aot)))
    )
    (tmp_path / "aot" / first.build_aot.name / "HeliosTransformerBlock").mkdir()
    (tmp_path / "aot" / first.build_aot.name / "HeliosTransformerBlock" / "package.pt2").write_bytes(b"")
    later = fit(aot="auto")
    assert later.build_aot is None and later.placement.faster.aot.endswith(first.build_aot.name)


def frames(cli, tmp_path, name, *flags):
    out = tmp_path / f"{name}.npy"
    done = cli(*RUN, *flags, "--out", out)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0], np.load(out).astype(int)


def test_a_run_from_the_folder_makes_the_frames_of_the_jit_run(folder, tmp_path, cli):
    banner, aot = frames(cli, tmp_path, "aot", "--aot", folder)
    assert f"blocks ahead-of-time compiled, from {folder}" in banner
    _, jit = frames(cli, tmp_path, "jit", "--aot", "off")
    assert aot.shape == jit.shape == (65, 64, 128, 3) and jit.std() > 1
    assert np.abs(aot - jit).max() <= 1


def test_the_folder_holds_code_and_no_weights(folder):
    """The blocks lend their weights at load, so a folder pushed to the Hub carries none (a full-size block's are
    ~0.7 GB in bf16)."""
    with zipfile.ZipFile(folder / "HeliosTransformerBlock" / "package.pt2") as package:
        names = package.namelist()
    assert any(name.endswith(".so") for name in names)
    assert not [name for name in names if "/weights/" in name]


def test_a_folder_made_for_another_torch_is_refused_and_the_run_compiles_just_in_time(folder, tmp_path, cli):
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    meta = json.loads((other / "helios-aot.json").read_text())
    meta["key"]["torch"] = "2.0.0"
    (other / "helios-aot.json").write_text(json.dumps(meta))
    banner, made = frames(cli, tmp_path, "other", "--aot", other)
    assert f"blocks compiled just in time: the AoT folder {other} was made for torch 2.0.0 (this run: " in banner
    assert made.shape == (65, 64, 128, 3)


@pytest.mark.parametrize("what", ["missing", "not an aot folder"])
def test_a_folder_that_is_not_one_is_refused_in_words(what, tmp_path, cli):
    folder = tmp_path / "blocks"
    if what != "missing":
        folder.mkdir()
    done = cli(*RUN, "--aot", folder, "--out", tmp_path / "x.npy")
    assert done.returncode == 1 and not (tmp_path / "x.npy").exists()
    line, = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "python -m helios compile" in line and "Traceback" not in done.stderr


def test_compile_refuses_to_write_over_a_folder_that_is_not_an_aot_folder(tmp_path, cli):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    done = cli("--model", "tiny", "--out", mine, command="compile")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith(f"error: --out {mine} exists and is not an AoT folder: give a new folder")
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]


def test_a_hub_id_runs_from_the_folder_the_hub_gave(folder, tmp_path, cli, monkeypatch):
    """A folder pushed to the Hub as a model repo (as `spaces` keeps them) is fetched once into the Hub's cache: here a
    cache made by hand, the Hub being offline in tests; an id the cache lacks is refused in words."""
    import huggingface_hub

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--helios-aot" / "snapshots" / ("0" * 40)
    shutil.copytree(folder, snapshot)
    (cache / "models--someone--helios-aot" / "refs").mkdir()
    (cache / "models--someone--helios-aot" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    banner, _ = frames(cli, tmp_path, "hub", "--aot", "someone/helios-aot")
    assert f"blocks ahead-of-time compiled, from {snapshot}" in banner
    done = cli(*RUN, "--aot", "someone/other-blocks", "--out", tmp_path / "x.npy")
    assert done.returncode == 1 and not (tmp_path / "x.npy").exists()
    assert done.stderr.startswith("error: Could not fetch someone/other-blocks from the Hugging Face Hub")
