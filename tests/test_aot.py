"""Ahead-of-time compiled blocks on the CPU (AOTInductor builds CPU code too): `python -m helios compile` writes a
folder, a run from it makes the frames of the just-in-time run, and a folder made for anything else is refused in
words, the run falling back to compiling just in time. One build takes ~40 s on 2 cores."""

import json
import shutil
import zipfile

import numpy as np
import pytest

pytestmark = pytest.mark.slow

RUN = ("--model", "tiny", "--prompt", "a kite over the dunes", "--height", "64", "--width", "128", "--frames", "66",
       "--steps", "1,1,1", "--seed", "5")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("aot") / "blocks"
    done = cli("--model", "tiny", "--height", "64", "--width", "128", "--out", out, command="compile")
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and f"--aot {out}" in done.stdout
    return out


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
