"""Comparisons without the page: two runs over the same inputs, one after the other, and what differs between them."""
import json
from dataclasses import replace

import imageio_ffmpeg
import numpy as np
import pytest

from helios.difference import video_difference
from helios.errors import BadInput, HeliosError
from helios.media import VideoWriter, video_frames
from helios.studio.compare import SideSettings
from helios.studio.form import Form
from helios.studio.models import SideModel
from helios.tiny import TinySpec, build_tiny

ROWS = [[0, "a paper boat"]]


def shared(**changes) -> Form:
    values = dict(
        rows=[], unit="seconds", crossfade=0, image=None, video=None, segments=2, steps="", seed=0, resolution="64x128"
    )
    return Form(**{**values, **changes})


def side(steps="1,1,1", seed=5, rows=ROWS, crossfade=1) -> SideSettings:
    return SideSettings(rows, crossfade, steps, seed)


def test_a_comparison_runs_a_then_b_and_measures_both(sessions):
    comparison = sessions.compare(
        "ann", shared(), side(seed=5), side(seed=6, rows=[[0, "a paper boat"], [1, "a storm"]])
    )
    sides = [s for s, _ in comparison.updates()]
    assert sides == sorted(sides) and set(sides) == {"A", "B"}, "all of A, then all of B"
    a, b = comparison.runs
    assert a.metrics.state == b.metrics.state == "done"
    assert [r.run.request.settings.seed for r in (a, b)] == [5, 6]
    assert len(b.run.request.timeline.entries) == 2 and len(a.run.request.timeline.entries) == 1
    rows = comparison.per_segment()
    assert [row[0] for row in rows] == [1, 2] and all(isinstance(row[1], float) and 0 < row[1] < 60 for row in rows)
    assert all(-1 < row[2] < 1 for row in rows), "SSIM of two random-weight videos: far from identical"
    assert rows[0][3:5] == ["-", "-"] and all(float(v) > 0 for v in rows[1][3:5]), "flicker into segment 2 only"
    assert rows[0][5:] == ["0.00", "0.00"], "drift is from the first segment"
    measures = {row[0]: row[1:] for row in comparison.measures()}
    assert measures["frames"] == ["65", "65", "0"]
    assert (
        float(measures["worst flicker at a boundary"][0]) > 0 and measures["sharpness by the end (first = 1)"][0] != "-"
    )
    assert float(measures["FPS"][0]) > 0 and float(measures["FPS"][1]) > 0
    series = comparison.fps_series()
    assert list(series.columns) == ["segment", "FPS", "run"]
    assert list(series["run"]) == ["A", "A", "B", "B", "real time (24 FPS)", "real time (24 FPS)"]
    assert list(series["segment"]) == ["1", "2"] * 3, "segments are categories"
    assert imageio_ffmpeg.count_frames_and_secs(str(comparison.difference.heatmap))[0] == 65
    assert sorted(f.suffix for f in comparison.files()) == [".json", ".json", ".mp4", ".mp4"]
    assert sessions.history("ann")[:2] == [b, a], "both runs join the session's history"


def test_the_same_settings_twice_are_identical_segment_by_segment(sessions):
    comparison = sessions.compare("bea", shared(segments=1), side(), side())
    list(comparison.updates())
    assert comparison.per_segment() == [[1, "identical", 1.0, "-", "-", "0.00", "0.00"]]
    assert not any(frame.any() for frame in video_frames(comparison.difference.heatmap)), "no difference is black"


def test_stopping_a_keeps_b_from_running(sessions):
    comparison = sessions.compare("cid", shared(segments=3), side(), side(seed=9))
    for _name, update in comparison.updates():
        if not isinstance(update, str) and update.clip:
            sessions.stop("cid")
    assert [r.metrics.state for r in comparison.runs] == ["stopped"]
    assert comparison.difference is None and comparison.per_segment() == []


def test_a_bad_side_is_refused_before_either_runs(sessions):
    with pytest.raises(BadInput, match="Steps per stage"):
        sessions.compare("dot", shared(), side(), side(steps="0,1,1"))
    with pytest.raises(BadInput, match="empty prompt"):
        sessions.compare("dot", shared(), side(rows=[[0, " "]]), side())
    assert sessions.history("dot") == []


def test_psnr_is_per_segment_and_the_heat_map_marks_where_frames_differ(tmp_path):
    y, x = np.mgrid[0:64, 0:96]
    smooth = np.stack([x * 2, y * 3, (x + y)], axis=-1).astype(np.uint8)
    frames = np.repeat(smooth[None], 12, axis=0)
    changed = frames.copy()
    changed[6:, :, :32] = 255 - changed[6:, :, :32]
    paths = []
    for name, video in (("a", frames), ("b", changed)):
        with VideoWriter(tmp_path / f"{name}.mp4") as writer:
            writer.add(video)
        paths.append(tmp_path / f"{name}.mp4")
    difference = video_difference(*paths, [6, 6], tmp_path / "heat.mp4")
    first, second = difference.segment_psnr_db
    assert first > 30 > 15 > second, (first, second)
    same, inverted = difference.segment_ssim
    assert same > 0.9 > inverted, (same, inverted)
    heat = np.stack(list(video_frames(difference.heatmap)))
    assert difference.frames == len(heat) == 12
    assert heat[8, :, :28].mean() > 60 > 20 > heat[8, :, 40:].mean() and heat[2].mean() < 20


def test_both_sides_start_from_the_same_image(sessions, tmp_path, sample_image):
    image = tmp_path / "start.png"
    sample_image.save(image)
    comparison = sessions.compare("eve", shared(segments=1, image=str(image)), side(), side())
    list(comparison.updates())
    a, b = (r.run.request for r in comparison.runs)
    assert a.task == b.task == "image-to-video" and a.image is b.image
    assert comparison.per_segment()[0][:3] == [1, "identical", 1.0]


def models_side(checkpoint="the loaded model", form="", engine="ours", **changes) -> SideSettings:
    return replace(side(**changes), model=SideModel(checkpoint, form, engine))


def test_each_side_runs_on_its_own_checkpoint_form_and_engine_and_the_loaded_model_stays(
    sessions, tmp_path, monkeypatch
):
    from helios import model_cache
    from helios.weights import files

    app_model = sessions.engine.model
    assert sessions.choices.checkpoints == ["the loaded model", "tiny-distilled", "tiny-mid", "tiny-base"]
    assert "loaded and warm" in sessions.choices.plan(SideModel())
    assert "copied from the loaded" in sessions.choices.plan(SideModel(form="FP8")), "no disk read for another form"
    assert "from disk" in sessions.choices.plan(SideModel("tiny-mid"))
    reads = []
    read = files._read_into
    monkeypatch.setattr(files, "_read_into", lambda f, o, t: reads.append(f.parent.parent.name) or read(f, o, t))

    comparison = sessions.compare("dee", shared(), models_side(form="FP8"), models_side("tiny-mid", engine="diffusers"))
    notes = [u for _, u in comparison.updates() if isinstance(u, str)]
    assert notes[0].startswith("Making A ready: ") and "copied from the loaded" in notes[0]
    assert notes[1].startswith("Making B ready: ") and "from disk" in notes[1]
    assert [r.metrics.state for r in comparison.runs] == ["done", "done"]
    assert "tiny-distilled" not in reads and "tiny-mid" in reads, "FP8 copied from the loaded weights; Mid read once"
    measures = {row[0]: row[1:] for row in comparison.measures()}
    assert measures["checkpoint"][0] == app_model.label and measures["checkpoint"][1].startswith("tiny-mid (")
    assert measures["weights (memory tier)"][:2] == ["cpu+fp8", "cpu"]
    assert measures["engine"][:2] == ["ours", "diffusers"]
    assert all(float(v) > 0 for v in measures["load and warm-up first (s)"][:2])
    recipes = [json.loads(f.read_text()) for f in comparison.files() if f.suffix == ".json"]
    assert sorted(r["engine"] for r in recipes) == ["diffusers", "ours"]
    assert (
        len(comparison.per_segment()) == 2
        and not comparison.flicker_series().empty
        and not comparison.drift_series().empty
    )
    assert model_cache.is_loaded(app_model), "Generate keeps its warm model"

    again = sessions.compare("dee", shared(), models_side(form="FP8"), models_side("tiny-mid", engine="diffusers"))
    list(again.updates())
    assert {row[0]: row[1:] for row in again.measures()}["load and warm-up first (s)"][:2] == ["warm", "warm"]


@pytest.mark.parametrize("model, words", [
    (SideModel("tiny-huge"), "not a checkpoint this app compares"),
    (SideModel(form="fp4"), "not a weight form"),
    (SideModel(engine="other"), "not an engine"),
])
def test_a_side_that_cannot_run_is_refused_before_a_starts(sessions, model, words):
    before = len(sessions.history("eve"))
    with pytest.raises(HeliosError, match=words):
        sessions.compare("eve", shared(), side(), replace(side(), model=model))
    assert len(sessions.history("eve")) == before, "nothing ran"


def test_the_reference_engine_is_refused_a_timeline_before_a_starts(sessions):
    with pytest.raises(BadInput, match="one prompt"):
        sessions.compare("fay", shared(), side(), models_side(engine="diffusers", rows=[[0, "a"], [1, "b"]]))
    assert sessions.history("fay") == []


def test_a_folder_the_app_was_started_with_is_a_checkpoint_choice(sessions, tmp_path):
    """A folder of its own: the session's shared tiny checkpoints may be loaded already by another file's tests (then
    the plan copies rather than reads)."""
    from helios.studio.models import ModelChoices

    folder = build_tiny(tmp_path / "tiny-base", TinySpec(flavour="base"))
    choices = ModelChoices(sessions.engine, folders=(folder,))
    assert choices.checkpoints[-1] == folder.name
    assert "from disk" in choices.plan(SideModel(folder.name))
    with pytest.raises(HeliosError, match="not a checkpoint this app compares"):
        choices.plan(SideModel(str(folder.parent / "elsewhere")))
