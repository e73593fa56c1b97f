"""The CLI as a user runs it: real files, exit codes and one-line errors; a video and a bad output name through a
real subprocess (`python -m helios`), the rest through the same `main` in this process (the `cli` fixture)."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from helios.media import VideoWriter

FAST = ["--height", "64", "--width", "64", "--steps", "1,1,1"]


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "helios", "generate", *map(str, args)], capture_output=True, text=True, cwd=cwd,
        timeout=300,
    )


def test_writes_a_playable_mp4_with_the_reference_frame_count(tmp_path):
    out = tmp_path / "fox.mp4"
    result = run("--model", "tiny", "--prompt", "a red fox", *FAST, "--frames", "40", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "round up to 2 segments" in result.stderr
    assert "segment 2/2" in result.stderr and "FPS" in result.stderr
    assert "65 frames" in result.stdout
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == 65 and seconds == pytest.approx(65 / 24, abs=0.1)


def test_npy_holds_the_raw_frames(tmp_path, cli):
    out = tmp_path / "frames.npy"
    assert cli("--model", "tiny", "--prompt", "rain", *FAST, "--frames", "33", "--out", out).returncode == 0
    frames = np.load(out)
    assert frames.shape == (33, 64, 64, 3) and frames.dtype == np.uint8 and frames.std() > 1


def test_timeline_csv_image_and_video_inputs(tmp_path, sample_image, video_file, cli):
    timeline = tmp_path / "t.csv"
    timeline.write_text("id,prompt_index,prompt\n0,0,a meadow\n0,1,a meadow at night\n")
    image = tmp_path / "start.png"
    sample_image.save(image)
    for context in (["--image", image], ["--video", video_file]):
        out = tmp_path / "out.npy"
        result = cli("--model", "tiny", "--timeline", timeline, *context, *FAST, "--frames", "66", "--out", out)
        assert result.returncode == 0, result.stderr
        assert np.load(out).shape == (65, 64, 64, 3)


def test_a_recipe_makes_the_same_frames_again(tmp_path, video_file, sample_video, cli):
    timeline = tmp_path / "t.json"
    timeline.write_text(json.dumps({"crossfade": 1, "entries": [{"start": 0, "unit": "segment", "prompt": "a harbour"},
                                                               {"start": 1, "unit": "segment", "prompt": "a storm"}]}))
    first, again = tmp_path / "first.mp4", tmp_path / "again.npy"
    made = cli("--model", "tiny", "--timeline", timeline, "--video", video_file, *FAST, "--frames", "99", "--seed", "4",
               "--out", first)
    assert made.returncode == 0, made.stderr
    recipe = json.loads((tmp_path / "first.json").read_text())
    assert (
        recipe["context"]["kind"] == "video"
        and recipe["timeline"]["crossfade"] == 1
        and recipe["settings"]["seed"] == 4
    )
    assert (
        len(recipe["timings"]["segments"]) == 3 and recipe["timings"]["overall_fps"] > 0 and recipe["packages"]["torch"]
    )
    tag = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags=comment", "-of", "json", first],
                         capture_output=True, text=True)
    assert json.loads(json.loads(tag.stdout)["format"]["tags"]["comment"]) == recipe, "the MP4 carries the same recipe"

    made_npy = cli(
        "--model",
        "tiny",
        "--timeline",
        timeline,
        "--video",
        video_file,
        *FAST,
        "--frames",
        "99",
        "--seed",
        "4",
        "--out",
        tmp_path / "first.npy",
    )
    assert made_npy.returncode == 0
    result = cli("--recipe", tmp_path / "first.json", "--video", video_file, "--out", again)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(again), np.load(tmp_path / "first.npy"))

    other = tmp_path / "other.mp4"
    with VideoWriter(other) as writer:
        writer.add(np.ascontiguousarray(sample_video[::-1]))
    for context, message in (
        (["--video", other], "not the one this recipe was made from"),
        ([], "pass the same one with --video"),
    ):
        refused = cli("--recipe", tmp_path / "first.json", *context, "--out", tmp_path / "x.npy")
        assert refused.returncode == 2 and message in refused.stderr and not (tmp_path / "x.npy").exists()


def test_a_grid_of_seeds_and_steps_runs_every_combination_into_a_folder(tmp_path, cli):
    out = tmp_path / "grid"
    result = cli("--model", "tiny", "--prompt", "a red fox", "--height", "64", "--width", "64", "--frames", "33",
                 "--seed", "0,1", "--steps", "1,1,1", "2,1,1", "--out", out)
    assert result.returncode == 0, result.stderr
    names = {f"seed{seed}-steps{steps}" for seed in (0, 1) for steps in ("1-1-1", "2-1-1")}
    assert {p.stem for p in out.glob("*.mp4")} == names == {p.stem for p in out.glob("*.json")}
    assert [line.startswith(f"run {n}/4 ") for n, line in enumerate(
        (line for line in result.stdout.splitlines() if line.startswith("run ")), 1)] == [True] * 4
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert {(r["seed"], r["steps"]) for r in rows} == {(s, t) for s in ("0", "1") for t in ("1,1,1", "2,1,1")}
    assert all(float(r["overall_fps"]) > 0 and int(r["frames"]) == 33 for r in rows)
    assert all(r["flicker_max"] == "" and float(r["drift_sharpness"]) == 1.0 for r in rows), "one segment: no boundary"
    refused = cli("--model", "tiny", "--prompt", "x", "--seed", "0,1", "--out", tmp_path / "one.mp4")
    assert refused.returncode == 2 and "need a folder for --out" in refused.stderr


def test_a_recipe_carries_the_flicker_at_each_boundary_and_each_segments_drift(tmp_path, cli):
    out = tmp_path / "two.npy"
    result = cli("--model", "tiny", "--prompt", "a red fox", "--height", "64", "--width", "64", "--frames", "66",
                 "--steps", "1,1,1", "--out", out)
    assert result.returncode == 0, result.stderr
    measures = json.loads(out.with_suffix(".json").read_text())["measures"]
    assert len(measures["flicker"]) == 1 and measures["flicker"][0] > 0
    assert len(measures["drift"]) == 2 and measures["drift"][0] == {"colour": 0.0, "brightness": 0.0, "sharpness": 1.0}


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory, tiny_checkpoint):
    """A checkpoint whose transformer config does not match its weights, and one whose weight files are damaged."""
    root = tmp_path_factory.mktemp("broken")
    mismatched = shutil.copytree(tiny_checkpoint("distilled"), root / "mismatched")
    config = json.loads((mismatched / "transformer" / "config.json").read_text())
    (mismatched / "transformer" / "config.json").write_text(json.dumps({**config, "ffn_dim": config["ffn_dim"] * 2}))
    damaged = shutil.copytree(tiny_checkpoint("distilled"), root / "damaged")
    for file in (damaged / "transformer").glob("*.safetensors"):
        file.write_bytes(b"\xff" * 16)
    return mismatched, damaged


def _bad_inputs(tmp_path: Path, broken: tuple[Path, Path]) -> dict:
    (tmp_path / "empty.json").write_text('{"crossfade": 1, "entries": []}')
    (tmp_path / "disorder.json").write_text(
        json.dumps({"entries": [{"start": 0, "prompt": "a"}, {"start": 3, "prompt": "b"}, {"start": 1, "prompt": "c"}]})
    )
    (tmp_path / "late.json").write_text(
        json.dumps({"entries": [{"start": 0, "prompt": "a"}, {"start": 9, "prompt": "b"}]})
    )
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.png").write_bytes(b"definitely not a png")
    (tmp_path / "fake.mp4").write_bytes(b"definitely not a video")
    zero = tmp_path / "zero.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "quiet", "-f", "lavfi", "-i", "color=s=64x64:d=1",
         "-frames:v", "0", "-c:v", "libx264", str(zero)], check=True,
    )
    full = tmp_path / "full-size"
    (full / "transformer").mkdir(parents=True)
    (full / "model_index.json").write_text(json.dumps({"_class_name": "HeliosPyramidPipeline", "is_distilled": True}))
    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
        (full / part).mkdir()
    (full / "transformer" / "config.json").write_text(json.dumps({"num_layers": 40, "num_attention_heads": 40}))
    t = ["--model", "tiny"]
    mismatched, damaged = broken
    return {
        "empty prompt": (2, "prompt is empty", [*t, "--prompt", "  "]),
        "empty timeline": (2, "timeline is empty", [*t, "--timeline", tmp_path / "empty.json"]),
        "timeline out of order": (2, "order rows by start", [*t, "--timeline", tmp_path / "disorder.json"]),
        "timeline beyond the video": (2, "only 4 segments", [*t, "--timeline", tmp_path / "late.json"]),
        "malformed timeline": (2, "malformed", [*t, "--timeline", tmp_path / "broken.json"]),
        "timeline of unknown type": (2, ".json or .csv", [*t, "--timeline", tmp_path / "notes.txt"]),
        "not an image": (2, "not an image", [*t, "--prompt", "x", "--image", tmp_path / "fake.png"]),
        "not a video": (2, "not a video", [*t, "--prompt", "x", "--video", tmp_path / "fake.mp4"]),
        "zero-frame video": (2, "has no frames", [*t, "--prompt", "x", "--video", zero]),
        "bad size": (2, "multiples of 64", [*t, "--prompt", "x", "--height", "100"]),
        "bad steps": (2, "Steps per stage", [*t, "--prompt", "x", "--steps", "two"]),
        "image and video": (2, "not allowed with", [*t, "--prompt", "x", "--image", "a.png", "--video", "b.mp4"]),
        "missing model folder": (1, "No model folder", ["--model", tmp_path / "nowhere", "--prompt", "x"]),
        "unreachable hub": (1, "Hugging Face Hub", ["--model", "nobody/no-such-model", "--prompt", "x"]),
        "full-size model without a GPU": (1, "needs a CUDA GPU", ["--model", full, "--prompt", "x", "--device", "cpu"]),
        "negative host memory": (2, "number of GiB above 0", [*t, "--prompt", "x", "--host-memory", "-1"]),
        "weights unlike the config": (1, "does not match its config.json", ["--model", mismatched, "--prompt", "x"]),
        "damaged weights": (1, "damaged header", ["--model", damaged, "--prompt", "x"]),
    }




@pytest.mark.parametrize(
    "case",
    ["empty prompt", "empty timeline", "timeline out of order", "timeline beyond the video", "malformed timeline",
     "timeline of unknown type", "not an image", "not a video", "zero-frame video", "bad size", "bad steps",
     "image and video", "missing model folder", "unreachable hub", "full-size model without a GPU",
     "negative host memory", "weights unlike the config", "damaged weights"],
)
def test_bad_input_gives_one_line_and_leaves_no_file(case, tmp_path, cli, broken_checkpoints):
    code, message, args = _bad_inputs(tmp_path, broken_checkpoints)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = cli(*args, "--frames", "132", "--out", out_dir / "video.mp4")
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert list(out_dir.iterdir()) == []


def test_bad_output_suffix(tmp_path):
    result = run("--model", "tiny", "--prompt", "x", "--out", tmp_path / "v.avi")
    assert result.returncode == 2 and "must end in .mp4" in result.stderr


def test_a_timeline_without_a_length_gets_one_that_covers_it(tmp_path, cli):
    timeline = tmp_path / "t.csv"
    timeline.write_text("id,prompt_index,prompt\n0,0,a meadow\n0,3,a meadow at night\n")
    out = tmp_path / "out.npy"
    result = cli("--model", "tiny", "--timeline", timeline, *FAST, "--out", out)
    assert result.returncode == 0, result.stderr
    assert len(np.load(out)) == 6 * 33 - 1, "segment 3 and a crossfade of 2 after it: 6 segments, trimmed to 4k+1"


def test_fp8_linears_reach_the_placement_and_an_unknown_one_is_refused_in_words():
    from helios.arguments import load_options_from_args
    from helios.cli import build_parser
    from helios.errors import BadInput

    args = build_parser().parse_args(
        ["generate", "--out", "x.npy", "--prompt", "a heron", "--fp8", "--fp8-linears", "ours"]
    )
    assert load_options_from_args(args).placement.weights.fp8_linears == "ours"
    assert (
        load_options_from_args(
            build_parser().parse_args(["generate", "--out", "x.npy", "--prompt", "a heron"])
        ).placement.weights.fp8_linears
        == "torchao"
    )
    with pytest.raises(BadInput, match="--fp8-linears.*cutlass"):
        build_parser().parse_args(["generate", "--out", "x.npy", "--prompt", "a heron", "--fp8-linears", "cutlass"])


def test_diffusers_engine_makes_the_frames_of_ours_on_the_same_weights(tmp_path, cli, tiny_checkpoint):
    """The oracle as a comparison side: diffusers' pipeline on the loaded model's modules, one level from ours at most
    on >= 99.9% of pixels (fp32, as tests/test_parity.py holds them)."""
    folder = tiny_checkpoint("distilled")
    common = ("--model", folder, "--prompt", "a kite", "--height", "64", "--width", "64", "--frames", "66",
              "--steps", "1,1,1", "--seed", "3")
    frames = {}
    for engine in ("ours", "diffusers"):
        done = cli(*common, "--engine", engine, "--out", tmp_path / f"{engine}.npy")
        assert done.returncode == 0, done.stderr
        frames[engine] = np.load(tmp_path / f"{engine}.npy").astype(int)
        recipe = json.loads((tmp_path / f"{engine}.json").read_text())
        assert recipe["engine"] == engine and len(recipe["measures"]["drift"]) == 2
    assert frames["ours"].shape == frames["diffusers"].shape == (65, 64, 64, 3)
    assert (abs(frames["ours"] - frames["diffusers"]) > 1).mean() < 1e-3
    refused = cli("--model", folder, "--timeline", "assets/timelines/seasons.csv", "--engine", "diffusers",
                  "--height", "64", "--width", "64", "--out", tmp_path / "t.npy")
    assert refused.returncode == 2 and "takes one prompt" in refused.stderr and not (tmp_path / "t.npy").exists()
