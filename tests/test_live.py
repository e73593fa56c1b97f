"""The Live tab's stream on the tiny model: endless, steered at segment boundaries, paused and resumed from its exact
state, its steer log a timeline that Generate makes again frame for frame, its recording playable at any moment, and
every bad input refused in words."""

import json
import time

import imageio_ffmpeg
import numpy as np
import pytest

from helios.engine import Engine
from helios.errors import BadInput
from helios.model_cache import load_model
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.segment import Segment
from helios.studio.form import Form
from helios.studio.live_session import LiveState
from helios.studio.settings import StudioSettings
from helios.timeline import PromptTimeline

SETTINGS = GenerationSettings(height=64, width=128, num_frames=33, pyramid_steps=(1, 1, 1), seed=3)


def form(prompt="a paper boat on a pond", **changes):
    values = dict(rows=[[0, prompt]], unit="segments", crossfade=1, image=None, video=None, segments=1, steps="1,1,1",
                  seed=3, resolution="64x128")
    return Form(**{**values, **changes})


@pytest.fixture(scope="module")
def engine():
    return Engine(load_model("tiny"))


def segments_of(run, until, act=lambda index, run: None):
    frames = []
    for event in run:
        if isinstance(event, Segment):
            frames.append(event.frames)
            act(event.index, run)
            if event.index + 1 >= until:
                run.pause()
    return frames


def test_an_endless_run_goes_past_any_length_until_paused(engine):
    run = Run(engine, GenerationRequest(PromptTimeline.single("a lighthouse"), SETTINGS, endless=True))
    frames = segments_of(run, until=4)
    assert len(frames) >= 4 and all(len(f) == 33 for f in frames), "every frame shown, none trimmed"
    assert run.continuation.next_segment == len(frames)


def test_steered_paused_and_resumed_it_is_the_one_run_its_log_describes(engine):
    """Generate with the exported log and the same seed gives the live frames, frame for frame."""
    def steer(index, run):
        if index == 0:
            run.steer("a storm at sea", 1)

    first = Run(engine, GenerationRequest(PromptTimeline.single("a calm sea"), SETTINGS, endless=True))
    live = segments_of(first, until=3, act=steer)
    resumed = Run(engine, GenerationRequest(first.timeline, SETTINGS, after=first.continuation, endless=True))
    live += segments_of(resumed, until=len(live) + 2)
    log = PromptTimeline.from_json(resumed.timeline.to_json())
    assert [(e.segment, e.prompt, e.crossfade) for e in log.entries][1][1:] == ("a storm at sea", 1)
    again = GenerationSettings(height=64, width=128, num_frames=33 * len(live), pyramid_steps=(1, 1, 1), seed=3)
    offline = np.concatenate([s.frames for s in Run(engine, GenerationRequest(log, again)).segments()])
    assert np.array_equal(offline, np.concatenate(live)[: len(offline)])


def test_a_steer_is_checked_before_it_is_queued(engine):
    run = Run(engine, GenerationRequest(PromptTimeline.single("a calm sea"), SETTINGS, endless=True))
    with pytest.raises(BadInput, match="empty prompt"):
        run.steer("  ")
    with pytest.raises(BadInput, match="Crossfade"):
        run.steer("a storm", -1)
    with pytest.raises(BadInput, match="tokens"):
        run.steer("storm " * 2000)


@pytest.fixture
def sessions(engine, tmp_path):
    import threading

    from helios.studio.sessions import Sessions

    ready = threading.Event()
    ready.set()
    return Sessions(engine, ready, StudioSettings(live_recording_bytes=2**30), root=tmp_path)


def play(live, segments, act=lambda n: None):
    """The first leg until `segments` segments are out; `act(n)` after the n-th."""
    for update in live.updates():
        if update.clip:
            act(live.stats.segments)
            if live.stats.segments >= segments:
                live.pause()


def test_a_session_steers_with_its_pads_and_says_where_and_how_fast_each_landed(sessions):
    live = sessions.live_start("ann", form(), ["a kite", "", "a storm"])

    def steer(n):
        if n == 1:
            assert sessions.live(live_owner := "ann").steer(sessions.live_pad(live_owner, 3), 0) >= 1

    play(live, 4, steer)
    landed = live.steers[0]
    assert landed.prompt == "a storm" and landed.segment is not None and 0 < landed.latency_s < 60
    assert live.state == LiveState.PAUSED
    with pytest.raises(BadInput, match="Pad 2 is empty"):
        sessions.live_pad("ann", 2)
    with pytest.raises(BadInput, match="no pad 10"):
        sessions.live_pad("ann", 10)


def test_paused_it_keeps_its_state_and_resumes_where_it_stopped(sessions):
    live = sessions.live_start("bo", form(), [])
    play(live, 2)
    done = live.stats.segments
    with pytest.raises(BadInput, match="Nothing is playing"):
        live.steer("a storm", 1)
    live.resume()
    indices = []
    for update in live.updates():
        if update.clip:
            indices.append(int(update.clip.stem.rsplit("-", 1)[1]))
            live.pause()
    assert indices and indices[0] == done, "the resumed leg starts at the segment after the last shown"


def test_the_recording_so_far_is_a_playable_mp4_with_its_recipe_mid_run(sessions):
    live = sessions.live_start("cy", form(), [])
    taken = []

    def take(n):
        if n == 2:
            taken.append(live.recording())

    play(live, 3, take)
    video = taken[0]
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 2 * 33
    recipe = json.loads(video.with_suffix(".json").read_text())
    assert recipe["timeline"]["entries"][0]["prompt"] == "a paper boat on a pond" and recipe["settings"]["seed"] == 3


def test_past_its_quota_the_recording_keeps_the_most_recent_minutes_and_says_so(engine, tmp_path):
    import threading

    from helios.studio.sessions import Sessions

    ready = threading.Event()
    ready.set()
    small = Sessions(engine, ready, StudioSettings(live_recording_bytes=1), root=tmp_path)
    live = small.live_start("di", form(), [])
    play(live, 3)
    assert len(live.clips) == 1 and live.dropped == live.stats.segments - 1 and "most recent" in live.recording_note
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(live.recording()))
    assert frames == 33


def test_bad_live_inputs_are_refused_in_words(sessions):
    with pytest.raises(BadInput, match="no live stream"):
        sessions.live("eve")
    with pytest.raises(BadInput, match="empty prompt"):
        sessions.live_start("eve", form(prompt=" "), [])
    live = sessions.live_start("eve", form(), [])
    with pytest.raises(BadInput, match="Nothing is recorded yet"):
        live.recording()
    updates = live.updates()
    next(updates)
    with pytest.raises(BadInput, match="already playing"):
        sessions.live_start("eve", form(), [])
    with pytest.raises(BadInput, match="The prompt is empty"):
        live.steer("", 1)
    assert live.stop()
    list(updates)
    assert live.state == LiveState.STOPPED
    with pytest.raises(BadInput, match="was stopped"):
        live.resume()


def test_a_client_that_goes_away_pauses_the_stream_and_the_session_release_frees_it(sessions):
    live = sessions.live_start("fay", form(), [])
    updates = live.updates()
    for update in updates:
        if update.clip:
            break
    updates.close()
    assert live.state == LiveState.PAUSED and live.recording().exists()
    sessions.forget("fay")
    assert not live.workdir.exists()


def test_someone_waiting_for_the_gpu_is_told_to_the_stream_which_then_pauses():
    from types import SimpleNamespace

    from helios.studio.live_tab import _Waiting

    queue = []
    page = SimpleNamespace(demo=SimpleNamespace(_queue=SimpleNamespace(
        event_queue_per_concurrency_id={"gpu": SimpleNamespace(queue=queue)})))

    def event(session, api_name):
        return SimpleNamespace(session_hash=session, fn=SimpleNamespace(api_name=api_name))

    waiting = _Waiting(page, "me", limit_s=0.2)
    queue.append(event("me", "generate"))
    assert waiting.verdict() == "" and waiting.note() == "", "the stream's own session's runs do not count"
    queue.append(event("you", "generate"))
    assert waiting.verdict() == "" and "pauses in" in waiting.note()
    time.sleep(0.25)
    assert "paused so that the queue moves" in waiting.verdict()
    queue.clear()
    assert waiting.verdict() == "" and waiting.note() == ""


def test_a_live_streams_held_clips_are_bounded_and_a_late_reader_starts_at_the_oldest(tmp_path):
    from helios.studio.live_stream import HELD, LiveStream

    stream = LiveStream()
    for n in range(HELD + 5):
        stream.add(tmp_path / f"{n}.mp4")
    assert len(stream.clips) == HELD
    assert stream.clip(0) == (5, tmp_path / "5.mp4") and stream.clip(HELD + 5) == (HELD + 5, None)
