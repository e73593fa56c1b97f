"""The app's parts without starting the app: the form's mapping, the metrics, and sessions driving the tiny engine."""

import json
import threading

import imageio_ffmpeg
import numpy as np
import pytest

from helios.engine import Engine, EngineOptions
from helios.errors import BadInput, Cancelled
from helios.limits import Limits
from helios.media import VideoWriter
from helios.model_cache import load_model
from helios.segment import Segment, SegmentTimings, StepProgress
from helios.studio.form import Form, build_request, rows_from_timeline, timeline_from_rows
from helios.studio.gpu import gpu_seconds
from helios.studio.metrics import RunMetrics
from helios.studio.sessions import Sessions
from helios.studio.settings import StudioSettings


def form(**changes) -> Form:
    values = dict(
        rows=[[0, "a paper boat"], [2.8, "a storm"]], unit="seconds", crossfade=1, image=None, video=None,
        segments=2, steps="1,1,1", seed=5, resolution="64x128",
    )
    return Form(**{**values, **changes})


def test_the_form_maps_to_a_request_without_rules_of_its_own():
    request = build_request(form())
    s = request.settings
    assert (s.height, s.width, s.num_frames, s.pyramid_steps, s.seed) == (64, 128, 66, (1, 1, 1), 5)
    assert [e.segment for e in request.timeline.entries] == [0, 2], "2.8 s is nearest segment 2's start"
    assert request.task == "text-to-video"
    rows, unit, crossfade = rows_from_timeline(request.timeline)
    assert rows == [[0, "a paper boat"], [2.8, "a storm"]] and unit == "seconds" and crossfade == 1
    with pytest.raises(BadInput, match="like 2,2,2"):
        build_request(form(steps="two"))
    with pytest.raises(BadInput, match="row 1: start must be a number"):
        timeline_from_rows([["soon", "x"]], "seconds", 0)


def test_zero_gpu_budget_reads_named_values_grows_with_the_work_and_stays_within_the_limits():
    limits = Limits(max_segments=20, max_steps=8)
    assert gpu_seconds(10, "2,2,2", limits) > gpu_seconds(10, "1,1,1", limits) > gpu_seconds(1, "1,1,1", limits)
    assert gpu_seconds(10**9, "1,1,1", limits) == gpu_seconds(20, "1,1,1", limits)
    assert gpu_seconds(20, "99999,1,1", limits) == gpu_seconds(20, "8,1,1", limits)
    assert gpu_seconds("lots", None, limits) == gpu_seconds(1, "2,2,2", limits)
    both = gpu_seconds(10, ["1,1,1", "2,2,2"], limits)
    assert both > gpu_seconds(10, "2,2,2", limits) and both < gpu_seconds(10, "1,1,1", limits) + gpu_seconds(
        10, "2,2,2", limits
    )


def test_metrics_show_measured_numbers_and_escape_prompts():
    metrics = RunMetrics()
    metrics.state = "generating"
    metrics.on_step(StepProgress(0, 3, 2, 6))
    frames = np.zeros((33, 8, 8, 3), np.uint8)
    metrics.on_segment(Segment(0, 3, frames, 0, (("<b>boat</b>", 1.0),), SegmentTimings(0.5, 0.1, 0.6)), 1.0)
    html = metrics.to_html()
    assert "55.0 FPS" in html and "&lt;b&gt;boat&lt;/b&gt;" in html and "<b>boat" not in html
    assert metrics.frames == 33 and metrics.first_frame_s is not None
    assert metrics.fps_table().to_dict("records") == [
        {"segment": "1", "FPS": 55.0, "run": "this run"}, {"segment": "1", "FPS": 24.0, "run": "real time (24 FPS)"},
    ]


@pytest.mark.parametrize(
    "steps, fps, advice",
    [
        (
            (2, 2, 2),
            [9.0, 12.5, 12.0, 12.2],
            "12.2 FPS at 2,2,2, below real time (24 FPS): 1,1,1 would play in real time on this GPU (about 24 FPS",
        ),
        (
            (3, 3, 3),
            [20.0, 9.0, 9.5],
            "9.5 FPS at 3,3,3, below real time (24 FPS): 1,1,1 would play in real time on this GPU (about 28 FPS",
        ),
        (
            (3, 3, 3),
            [20.0, 6.0, 6.0],
            "6.0 FPS at 3,3,3, below real time (24 FPS); no steps preset reaches it on this GPU (1,1,1: about 18 FPS",
        ),
        (
            (4, 4, 4),
            [5.0, 13.0],
            "13.0 FPS at 4,4,4, below real time (24 FPS): 2,2,2 would play in real time on this GPU (about 26 FPS",
        ),
        ((1, 1, 1), [20.0, 30.0], None),
        ((1, 1, 1), [9.0, 17.8], "17.8 FPS at 1,1,1, below real time (24 FPS), with the fewest steps: a smaller size"),
        ((2, 1, 2), [5.0, 10.0], None),
    ],
)
def test_a_run_slower_than_real_time_names_the_preset_that_would_be(steps, fps, advice):
    metrics = RunMetrics(steps=steps)
    frames = np.zeros((33, 8, 8, 3), np.uint8)
    for n, value in enumerate(fps):
        metrics.on_segment(
            Segment(n, len(fps), frames, 33 * n, (("a boat", 1.0),), SegmentTimings(33 / value, 0.1, 33 / value)), 1.0
        )
    assert metrics.real_time_advice() is None, "said only once the run has ended"
    metrics.state = "done"
    said = metrics.real_time_advice()
    assert (said is None) if advice is None else said.startswith(advice)
    if advice:
        assert "real time" in metrics.to_html()


def test_the_first_segment_alone_tells_a_later_ones_time_by_its_steps():
    """A run's first segment has twice the steps: alone, it must not make a run faster than real time look slower
    (smooth playback would hold its start for nothing); the later segments' own times replace the estimate."""
    metrics = RunMetrics(steps=(2, 2, 2))
    frames = np.zeros((33, 8, 8, 3), np.uint8)
    metrics.on_step(StepProgress(0, 10, 12, 12))
    metrics.on_segment(Segment(0, 10, frames, 0, (("a boat", 1.0),), SegmentTimings(2.0, 0.2, 2.2)), 1.0)
    assert metrics.segment_s == pytest.approx(2.0 * 6 / 12 + 0.2)
    assert 'data-rtf="1.146"' in metrics.to_html(), "faster than real time (1.375 s of video in 1.2 s)"
    metrics.on_step(StepProgress(1, 10, 6, 6))
    metrics.on_segment(Segment(1, 10, frames, 33, (("a boat", 1.0),), SegmentTimings(1.2, 0.2, 1.4)), 1.0)
    assert metrics.segment_s == pytest.approx(1.4)


def test_metrics_show_a_long_prompt_shortened():
    metrics = RunMetrics()
    frames = np.zeros((33, 8, 8, 3), np.uint8)
    metrics.on_segment(Segment(0, 1, frames, 0, (("a fox " * 20000, 1.0),), SegmentTimings(0.5, 0.1, 0.6)), 1.0)
    assert len(metrics.to_html()) < 2000 and "a fox a fox" in metrics.to_html()


@pytest.mark.parametrize("change, message", [
    (dict(seed=float("nan")), "The seed must be a whole number"),
    (dict(seed=10**30), "The seed must be a whole number from 0 to"),
    (dict(seed=2**70), "The seed must be a whole number from 0 to"),
    (dict(seed=-1), "The seed must be a whole number from 0 to"),
    (dict(segments=float("nan")), "Segments must be a whole number"),
    (dict(segments=float("inf")), "Segments must be a whole number"),
    (dict(crossfade=float("nan")), "Crossfade must be a whole number"),
    (dict(rows=[["inf", "a boat"]]), "start must be a number, 0 or more"),
    (dict(rows=[["0", "a boat"], ["nan", "a ship"]]), "start must be a number, 0 or more"),
    (dict(rows=[["0", "boat " * 600]]), "longer than the 512 tokens the model reads: shorten it"),
])
def test_bad_numbers_and_long_prompts_are_refused_in_words(sessions, change, message):
    with pytest.raises(BadInput, match=message):
        sessions.generate("erin", form(**change))


def test_error_toasts_carry_no_markup():
    from helios.studio.tab import user_error as _user_error

    crafted = '<a href="https://example.com">Click to fix</a><form><input type=password></form>'
    with pytest.raises(BadInput) as caught:
        build_request(form(rows=[[crafted, "a boat"]]))
    shown = _user_error(caught.value).message
    assert "<a " not in shown and "<form" not in shown and "&lt;a href=" in shown


def test_a_session_generates_continues_and_keeps_to_itself(sessions):
    one = [[0, "a paper boat"]]
    seed, updates = sessions.generate("alice", form(segments=1, rows=one))
    final = list(updates)[-1]
    assert seed == 5 and final.final and final.metrics.state == "done"
    with pytest.raises(BadInput, match="Nothing to continue"):
        sessions.extend("bob", form())
    assert not sessions.stop("bob")
    more = list(sessions.extend("alice", form(segments=1, rows=one)))
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(more[-1].video))
    assert frames == 65 and more[-1].metrics.frames == 32, "the held-back frame and 31 new, as one 2-segment run"


def decoded(path) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def test_each_segment_is_encoded_once_the_mp4_is_the_streamed_clips(sessions):
    _, updates = sessions.generate("dave", form(segments=2, rows=[[0, "a kite"]]))
    updates = list(updates)
    clips = [decoded(u.clip) for u in updates if u.clip]
    video = decoded(updates[-1].video)
    assert [len(c) for c in clips] == [33, 32] and len(video) == 65
    assert np.array_equal(video, np.concatenate(clips)), "a second encode would change the pixels"
    recipe = json.loads(updates[-1].video.with_suffix(".json").read_text())
    assert recipe["timeline"]["entries"][0]["prompt"] == "a kite" and len(recipe["timings"]["segments"]) == 2


def test_stop_while_queued_keeps_the_run_from_starting(sessions):
    assert not sessions.stop("fay"), "nothing running or queued"
    assert sessions.stop("fay", waiting=2)
    for _ in range(2):
        with pytest.raises(Cancelled, match="Stopped before it started"):
            sessions.generate("fay", form(segments=1))
    _, updates = sessions.generate("fay", form(segments=1, rows=[[0, "a kite"]]))
    assert list(updates)[-1].metrics.state == "done", "a Stop reaches only the runs queued when it was pressed"


def test_quiet_sessions_are_released_and_run_files_stay_under_the_cap(tmp_path):
    now = [0.0]
    ready = threading.Event()
    ready.set()
    engine = Engine(load_model("tiny"))
    sessions = Sessions(engine, ready, StudioSettings(idle_release_s=60, disk_cap_bytes=10**12), clock=lambda: now[0])
    folders = {}
    for name in ("api-1", "api-2"):
        list(sessions.generate(name, form(segments=1, rows=[[0, "a kite"]]))[1])
        folders[name] = sessions.get(name).workdir
    now[0] = 61
    list(sessions.generate("api-3", form(segments=1, rows=[[0, "a kite"]]))[1])
    assert sessions.get("api-1") is None and sessions.get("api-2") is None
    assert not folders["api-1"].exists() and not folders["api-2"].exists() and sessions.get("api-3").workdir.exists()

    one_run = sessions.get("api-3").disk_bytes()
    capped = Sessions(engine, ready, StudioSettings(idle_release_s=10**6, disk_cap_bytes=int(2.5 * one_run)))
    kept = []
    for n in range(5):
        list(capped.generate(f"s{n}", form(segments=1, rows=[[0, "a kite"]]))[1])
        kept.append(sorted(s for s in (f"s{k}" for k in range(n + 1)) if capped.get(s)))
        assert sum(capped.get(s).disk_bytes() for s in kept[-1]) <= 2.5 * one_run
    assert kept[-1] == ["s3", "s4"], "the least recently used go first"


def test_continue_after_a_different_size_is_refused_in_words(sessions):
    list(sessions.generate("carol", form(segments=1, rows=[[0, "a paper boat"]]))[1])
    with pytest.raises(BadInput, match="keeps its size: use 64x128"):
        sessions.extend("carol", form(resolution="192x320"))


def test_a_hosts_limits_are_enforced_and_shown_on_the_page(tmp_path):
    from helios.studio.page import build_demo

    limits = Limits(max_segments=2, max_steps=4)
    engine = Engine(load_model("tiny"), EngineOptions(limits=limits))
    ready = threading.Event()
    ready.set()
    sessions = Sessions(engine, ready)
    with pytest.raises(BadInput, match="at most 2"):
        sessions.generate("host", form(segments=3))
    with pytest.raises(BadInput, match="from 1 to 4"):
        sessions.generate("host", form(steps="5,1,1", segments=1))
    long_video = tmp_path / "long.mp4"
    with VideoWriter(long_video) as writer:
        writer.add(np.zeros((70, 64, 64, 3), np.uint8))
    with pytest.raises(BadInput, match="more than 66 frames"):
        sessions.generate("host", form(video=str(long_video), segments=1))
    props = [c.get("props", {}) for c in build_demo(engine, "banner", "64x128").config["components"]]
    assert any(p.get("maximum") == 2 and "segments" in str(p.get("label")) for p in props)
    assert any("from 1 to 4" in str(p.get("info")) for p in props)
    assert any("at most 66 frames" in str(p.get("label")) for p in props)


def test_a_sessions_runs_are_kept_newest_first_to_replay_download_and_load(sessions, monkeypatch):
    from helios.studio import history

    monkeypatch.setattr(sessions, "settings", StudioSettings(runs_kept=2))
    workdirs = []
    for seed in (11, 12, 13):
        _, updates = sessions.generate("gil", form(segments=1, seed=seed, steps="2,1,1", rows=[[0, f"a kite {seed}"]]))
        list(updates)
        workdirs.append(sessions.get("gil").workdir)
    runs = sessions.history("gil")
    assert [history.summary(i, r)[3] for i, r in enumerate(runs)] == [13, 12], "newest first, two kept"
    assert not workdirs[0].exists(), "the run that fell off the history is deleted with its files"
    video, recipe = history.files(runs[1])
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 33
    assert json.loads(recipe.read_text())["settings"]["seed"] == 12
    rows, unit, crossfade, segments, steps, seed, resolution = history.form_values(runs[1], ())
    assert (rows[0][1], segments, steps, seed, resolution) == ("a kite 12", 1, "2,1,1", 12, "64x128")
    row = history.summary(2, runs[1])
    assert row[1] == "a kite 12" and row[6] > 0 and row[8] == "done"


def test_a_run_forgotten_while_generating_deletes_its_files_when_it_ends(sessions):
    _, updates = sessions.generate("hal", form(segments=3))
    next(iter(updates))
    workdir = sessions.get("hal").workdir
    sessions.forget("hal")
    list(updates)
    assert not workdir.exists()


def test_another_sessions_run_given_as_an_input_is_refused_in_words(tmp_path):
    engine = Engine(load_model("tiny"))
    ready = threading.Event()
    ready.set()
    sessions = Sessions(engine, ready, root=tmp_path / "runs")
    _, updates = sessions.generate("ann", form(segments=1, rows=[[0, "a kite"]]))
    video = [u.video for u in updates if u.video][0]
    assert len(video.parent.name) >= 32, "run folders are named as unguessably as a session token"
    with pytest.raises(BadInput, match="That video is another session's file: upload one of your own"):
        sessions.generate("bob", form(video=str(video), segments=1, rows=[[0, "a kite"]]))
    with pytest.raises(BadInput, match="That image is another session's file"):
        sessions.generate(
            "bob",
            form(image=str(video.parent / ".." / video.parent.name / "helios.json"), segments=1, rows=[[0, "a kite"]]),
        )
    _, mine = sessions.generate("ann", form(video=str(video), segments=1, rows=[[0, "a kite"]]))
    assert [u for u in mine if u.final][0].metrics.state == "done", "a session may continue its own video"


