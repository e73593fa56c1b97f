"""`python -m helios suite`: every prompt under every configuration, a CSV of the measures, a static report, rows
made again from their recipes, and a suite that resumes where it stopped."""

import csv
import re

import numpy as np
import pytest

from helios.media import video_frames

pytestmark = pytest.mark.slow

COMMON = "--model tiny --height 64 --width 64 --frames 66"


def suite(cli, tmp_path, *more, prompts="prompts.txt"):
    return cli("--prompts", tmp_path / prompts, "--common", COMMON, "--config", "fast=--steps 1,1,1",
               "--config", "seeded=--steps 1,1,1 --seed 7", *more, "--out", tmp_path / "suite", command="suite")


def test_a_suite_runs_every_prompt_under_every_configuration_and_reports(tmp_path, cli):
    (tmp_path / "prompts.txt").write_text("a red fox in snow\n\na lighthouse at dusk\n")
    done = suite(cli, tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "suite"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4")) == [
        "fast/p001.mp4", "fast/p002.mp4", "seeded/p001.mp4", "seeded/p002.mp4"]
    rows = list(csv.DictReader(open(out / "suite.csv")))
    assert [(r["prompt_id"], r["config"]) for r in rows] == [
        ("p001", "fast"), ("p001", "seeded"), ("p002", "fast"), ("p002", "seeded")]
    assert {r["seed"] for r in rows} == {"0", "7"} and all(int(r["frames"]) == 65 for r in rows)
    assert all(float(r["flicker_max"]) > 0 and float(r["drift_sharpness"]) > 0 for r in rows), "two segments each"
    report = (out / "report.html").read_text()
    assert report.count("<video") == 4 and "a lighthouse at dusk" in report and report.count("<svg") == 4
    assert not re.search(r"(src|href)=['\"]https?:", report), "the report opens without a network"

    again = tmp_path / "again.mp4"
    made = cli("--recipe", out / "seeded" / "p002.json", "--out", again)
    assert made.returncode == 0, made.stderr
    original, remade = (np.stack(list(video_frames(v))).astype(int) for v in (out / "seeded" / "p002.mp4", again))
    assert abs(remade - original).mean() < 0.5, "the row's recipe makes it again"


def test_a_stopped_suite_resumes_and_keeps_what_was_made(tmp_path, cli):
    (tmp_path / "prompts.csv").write_text("id,prompt\nfox,a red fox\nboat,a paper boat\n")
    assert suite(cli, tmp_path, prompts="prompts.csv").returncode == 0
    kept = tmp_path / "suite" / "fast" / "fox.mp4"
    before = kept.stat().st_mtime_ns
    (tmp_path / "suite" / "seeded" / "boat.json").unlink()  # as a stop leaves it: that run never finished
    done = suite(cli, tmp_path, prompts="prompts.csv")
    assert done.returncode == 0, done.stderr
    assert "fast 1/2 fox: done before, kept" in done.stdout and "seeded 2/2 boat: 65 frames" in done.stdout
    assert kept.stat().st_mtime_ns == before
    assert len(list(csv.DictReader(open(tmp_path / "suite" / "suite.csv")))) == 4


def test_bad_suites_are_refused_in_words(tmp_path, cli):
    (tmp_path / "prompts.txt").write_text("a fox\n")
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "noprompt.csv").write_text("id,text\na,b\n")
    cases = {
        "holds no prompt": ("--prompts", tmp_path / "empty.txt", "--config", "a=--steps 1,1,1"),
        "'prompt' column": ("--prompts", tmp_path / "noprompt.csv", "--config", "a=--steps 1,1,1"),
        "write a name": ("--prompts", tmp_path / "prompts.txt", "--config", "--steps 1,1,1"),
        "is the suite's to set": ("--prompts", tmp_path / "prompts.txt", "--config", "a=--prompt x"),
        "a configuration per combination": ("--prompts", tmp_path / "prompts.txt", "--config", "a=--seed 1,2"),
        "a name of its own": ("--prompts", tmp_path / "prompts.txt", "--config", "a=", "--config", "a=--seed 2"),
    }
    for words, args in cases.items():
        done = cli(*args, "--out", tmp_path / "never", command="suite")
        assert done.returncode == 2 and words in done.stderr and done.stderr.count("\n") == 1, (words, done.stderr)
    assert not (tmp_path / "never").exists()


def test_ours_against_diffusers_on_the_same_weights_agrees_as_the_parity_tests_do(tmp_path, cli, tiny_checkpoint):
    (tmp_path / "prompts.txt").write_text("a kite over dunes\n")
    common = f"--model {tiny_checkpoint('distilled')} --height 64 --width 64 --frames 66 --steps 1,1,1 --seed 3"
    done = cli("--prompts", tmp_path / "prompts.txt", "--common", common, "--config", "diffusers=--engine diffusers",
               "--config", "ours=--engine ours", "--baseline", "diffusers", "--out", tmp_path / "s", command="suite")
    assert done.returncode == 0, done.stderr
    ours, = [r for r in csv.DictReader(open(tmp_path / "s" / "suite.csv")) if r["config"] == "ours"]
    assert float(ours["psnr_vs_baseline"]) > 40 and float(ours["ssim_vs_baseline"]) > 0.99, ours
    assert (tmp_path / "s" / "ours" / "p001-vs-diffusers.mp4").is_file()
    assert "psnr_vs_baseline" in (tmp_path / "s" / "report.html").read_text()


def test_an_fp8_configuration_after_bf16_copies_the_loaded_weights_and_reads_nothing(tmp_path, cli, monkeypatch):
    from helios import model_cache
    from helios.loading import resolve_folder
    from helios.stored import stored_tensors
    from helios.weights import files

    monkeypatch.setattr(model_cache, "_models", {})  # nothing loaded before
    reads = []
    read = files._read_into
    monkeypatch.setattr(files, "_read_into", lambda f, o, t: reads.append(f.parent.name) or read(f, o, t))
    (tmp_path / "prompts.txt").write_text("a red fox in snow\n")
    done = cli(
        "--prompts",
        tmp_path / "prompts.txt",
        "--common",
        COMMON.replace("tiny", "tiny-mid") + " --frames 33",
        "--config",
        "bf16=--steps 1,1,1",
        "--config",
        "fp8=--steps 1,1,1 --fp8",
        "--out",
        tmp_path / "s",
        command="suite",
    )
    assert done.returncode == 0, done.stderr
    assert "fp8: Model: tiny-mid" in done.stdout and "cpu+fp8" in done.stdout
    stored = stored_tensors(resolve_folder("tiny-mid") / "transformer")
    assert reads.count("transformer") == len(stored), "the transformer's files read once, for bf16"
    rows = {r["config"]: r for r in csv.DictReader(open(tmp_path / "s" / "suite.csv"))}
    assert rows["fp8"]["tier"] == "cpu+fp8" and rows["bf16"]["tier"] == "cpu"
