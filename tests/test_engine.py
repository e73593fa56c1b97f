import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from helios.engine import Engine
from helios.errors import BadInput, OutOfMemory
from helios.model_cache import load_model
from helios.noise import sample_block_noise
from helios.request import GenerationRequest, GenerationSettings
from helios.run import Run
from helios.segment import StepProgress
from helios.timeline import PromptTimeline, TimelineEntry
from helios.tiny import TinySpec, build_tiny

FAST = dict(height=64, width=64, pyramid_steps=(1, 1, 1))


@pytest.fixture
def engine(tiny_checkpoint):
    return Engine(load_model(str(tiny_checkpoint("distilled"))))


@pytest.fixture
def forwards(engine, monkeypatch):
    """Every transformer call's text conditioning, in order."""
    calls = []
    forward = engine.model.transformer.forward

    def recording(*args, **kwargs):
        calls.append(kwargs["encoder_hidden_states"].clone())
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model.transformer, "forward", recording)
    return calls


def request(timeline, frames=33 * 4, **kw):
    return GenerationRequest(timeline, GenerationSettings(num_frames=frames, **FAST, **kw))


def test_segments_stream_with_frames_ranges_prompts_and_timings(engine):
    segments = list(Run(engine, request(PromptTimeline.single("waves"), frames=70)).segments())
    assert [s.index for s in segments] == [0, 1, 2]
    assert [(s.frame_start, s.frame_end) for s in segments] == [(0, 33), (33, 66), (66, 97)]
    for s in segments:
        assert s.frames.dtype == np.uint8 and s.frames.shape[1:] == (64, 64, 3)
        assert s.prompts == (("waves", 1.0),)
        assert 0 < s.timings.denoise_s < s.timings.total_s and s.timings.decode_s > 0 and s.fps > 0


def test_two_prompt_crossfade_conditions_each_segment_on_the_lerp(engine, forwards):
    a, b = "a calm sea at dawn", "a storm at night"
    timeline = PromptTimeline((TimelineEntry(0, a), TimelineEntry(1, b)), crossfade=2)
    segments = list(Run(engine, request(timeline)).segments())
    ea, eb = engine.prompts.encode(a), engine.prompts.encode(b)
    per_segment = [6, 3, 3, 3]  # amplified first segment: twice the steps
    starts = np.cumsum([0] + per_segment[:-1])
    tol = 1e-6 if ea.dtype == torch.float32 else 2e-2
    for k, weight in enumerate([0.0, 1 / 3, 2 / 3, 1.0]):
        expected = (1 - weight) * ea.float() + weight * eb.float()
        for call in forwards[starts[k] : starts[k] + per_segment[k]]:
            torch.testing.assert_close(call.float(), expected, atol=tol, rtol=tol)
        assert dict(segments[k].prompts).get(b, 0.0) == pytest.approx(weight)
    assert len(forwards) == sum(per_segment)


def test_events_arrive_in_order_steps_then_their_segment(engine):
    events = list(Run(engine, request(PromptTimeline.single("a kite"), frames=66)))
    kinds = [(type(e).__name__, e.segment if isinstance(e, StepProgress) else e.index) for e in events]
    first_segment = kinds.index(("Segment", 0))
    assert all(k == ("StepProgress", 0) for k in kinds[:first_segment])
    assert [e.step for e in events[:first_segment]] == list(range(0, 7)), "step 0, then each of 6 amplified steps"
    assert kinds[-1] == ("Segment", 1)


def test_timeline_change_while_running_applies_from_the_next_segment_to_start(engine, forwards):
    run = Run(engine, request(PromptTimeline.single("a quiet forest")))
    stream = run.segments()
    first = next(stream)
    run.set_timeline(PromptTimeline((TimelineEntry(0, "a quiet forest"), TimelineEntry(1, "a forest fire")), 0))
    prompts = [first.prompts] + [s.prompts for s in stream]
    old, new = (("a quiet forest", 1.0),), (("a forest fire", 1.0),)
    switch = prompts.index(new)
    assert switch in (1, 2), (
        "the segment being denoised when the change arrives is the only one that keeps the old prompt"
    )
    assert prompts == [old] * switch + [new] * (4 - switch)
    torch.testing.assert_close(forwards[-1], engine.prompts.encode("a forest fire"))


def test_a_bad_timeline_change_is_refused_and_the_run_goes_on(engine):
    run = Run(engine, request(PromptTimeline.single("a quiet forest"), frames=66))
    with pytest.raises(BadInput, match="only 2 segments"):
        run.set_timeline(PromptTimeline((TimelineEntry(0, "a"), TimelineEntry(5, "b")), 0))
    with pytest.raises(BadInput, match="longer than the 512 tokens"):
        run.set_timeline(PromptTimeline((TimelineEntry(0, "a"), TimelineEntry(1, "storm " * 600)), 0))
    assert len(list(run.segments())) == 2


def test_cancel_stops_within_one_step_and_frees_the_engine(engine, monkeypatch):
    calls = []
    forward = engine.model.transformer.forward

    def slow(*args, **kwargs):
        calls.append(time.perf_counter())
        time.sleep(0.2)  # the consumer sees each step before the next one ends
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model.transformer, "forward", slow)
    run = Run(engine, request(PromptTimeline.single("a train")))
    seen = 0
    for event in run:
        assert isinstance(event, StepProgress), "no segment may be finished"
        seen = event.step
        if event.step == 2:
            run.cancel()
    assert seen <= 3 and len(calls) <= 3, "at most the step running at the cancel may finish (6 without a cancel)"
    monkeypatch.undo()
    assert len(list(Run(engine, request(PromptTimeline.single("a train"), frames=33)).segments())) == 1


def test_out_of_memory_ends_the_run_in_words_and_the_engine_serves_the_next(engine, monkeypatch):
    forward = engine.model.transformer.forward
    calls = []

    def starved(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:  # the first step of segment 2: segment 1 (amplified) took 6
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model.transformer, "forward", starved)
    handed_out = []
    with pytest.raises(OutOfMemory, match="segment 2 of 3: the run was stopped and its memory freed"):
        for segment in Run(engine, request(PromptTimeline.single("waves"), frames=99)).segments():
            handed_out.append(segment.index)
    assert handed_out == [0]
    monkeypatch.setattr(engine.model.transformer, "forward", forward)
    assert [s.index for s in Run(engine, request(PromptTimeline.single("waves"), frames=33)).segments()] == [0]


def test_runs_denoise_and_decode_on_two_long_lived_threads(engine, monkeypatch):
    """cuDNN's autotuned plans are kept per thread: a thread per run would tune the VAE anew every run."""
    seen = {"denoise": set(), "decode": set()}
    forward, decode = engine.model.transformer.forward, engine.decode

    def denoising(*args, **kwargs):
        seen["denoise"].add(threading.get_ident())
        return forward(*args, **kwargs)

    def decoding(*args, **kwargs):
        seen["decode"].add(threading.get_ident())
        return decode(*args, **kwargs)

    monkeypatch.setattr(engine.model.transformer, "forward", denoising)
    monkeypatch.setattr(engine, "decode", decoding)
    for _ in range(2):
        list(Run(engine, request(PromptTimeline.single("waves"), frames=66)).segments())
    iterating = [
        threading.Thread(
            target=lambda: list(Run(engine, request(PromptTimeline.single("waves"), frames=33)).segments())
        )
    ]
    iterating[0].start()
    iterating[0].join()
    assert len(seen["denoise"]) == 1 and len(seen["decode"]) == 1
    assert seen["denoise"] != seen["decode"] and threading.get_ident() not in seen["denoise"] | seen["decode"]


def test_cancel_from_another_thread(engine):
    run = Run(engine, request(PromptTimeline.single("x"), 33 * 20))
    out = []
    worker = threading.Thread(target=lambda: out.extend(run.segments()))
    worker.start()
    time.sleep(1.0)
    run.cancel()
    worker.join(30)
    assert not worker.is_alive() and len(out) < 20


def test_one_generation_at_a_time(engine):
    stream = Run(engine, request(PromptTimeline.single("x"), 66)).segments()
    next(stream)
    with pytest.raises(BadInput, match="busy"):
        next(Run(engine, request(PromptTimeline.single("y"), 33)).segments())
    stream.close()


@pytest.mark.parametrize("flavour, steps", [
    ("distilled", dict(pyramid_steps=(1, 1, 1))),
    ("mid", dict(pyramid_steps=(1, 1, 1), guidance_scale=5.0)),
    ("base", dict(num_inference_steps=2)),
])
def test_continuing_a_run_gives_the_frames_of_one_longer_run(tiny_checkpoint, flavour, steps):
    engine = Engine(load_model(str(tiny_checkpoint(flavour))))
    timeline = PromptTimeline((TimelineEntry(0, "a red kite"), TimelineEntry(1, "a storm")), crossfade=2)
    settings = GenerationSettings(height=64, width=64, num_frames=33 * 4, seed=9, **steps)
    whole = np.concatenate([s.frames for s in Run(engine, GenerationRequest(timeline, settings)).segments()])
    first = Run(engine, GenerationRequest(timeline, dataclasses.replace(settings, num_frames=66)))
    part1 = list(first.segments())
    later = GenerationRequest(
        timeline, dataclasses.replace(settings, num_frames=66, seed=12345), after=first.continuation
    )
    part2 = list(Run(engine, later).segments())
    assert [s.index for s in part1 + part2] == [0, 1, 2, 3] and part2[0].frame_start == 65
    joined = np.concatenate([s.frames for s in part1 + part2])
    assert whole.shape == joined.shape == (129, 64, 64, 3) and whole.std() > 5
    np.testing.assert_array_equal(joined, whole)


def test_a_stopped_run_continues_from_its_last_segment(engine):
    settings = GenerationSettings(num_frames=33 * 3, seed=4, **FAST)
    whole = np.concatenate(
        [s.frames for s in Run(engine, GenerationRequest(PromptTimeline.single("a"), settings)).segments()]
    )
    run = Run(engine, GenerationRequest(PromptTimeline.single("a"), settings))
    shown = []
    for segment in run.segments():
        shown.append(segment.frames)
        run.cancel()
    assert run.continuation.next_segment == len(shown) < 3
    rest = Run(engine, GenerationRequest(PromptTimeline.single("a"), settings, after=run.continuation))
    np.testing.assert_array_equal(np.concatenate(shown + [s.frames for s in rest.segments()])[: len(whole)], whole)


def test_a_continuation_keeps_its_size(engine):
    first = Run(engine, request(PromptTimeline.single("a"), frames=33))
    list(first.segments())
    bigger = GenerationRequest(
        PromptTimeline.single("a"), GenerationSettings(height=128, width=128), after=first.continuation
    )
    with pytest.raises(BadInput, match="keeps its size: use 64x64"):
        Run(engine, bigger)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(height=100, width=64), "multiples of 64"),
        (dict(height=64, width=64, num_frames=0), "frames"),
        (dict(height=64, width=64, num_frames=33 * 500), "at most"),
        (dict(height=64, width=64, pyramid_steps=(1, 1)), "Steps per stage"),
        (dict(height=64, width=64, pyramid_steps=(20000, 1, 1)), "from 1 to 50"),
        (dict(height=64, width=64, guidance_scale=-1.0), "Guidance"),
    ],
)
def test_bad_settings_are_refused_before_any_work(engine, settings, message):
    with pytest.raises(BadInput, match=message):
        Run(engine, GenerationRequest(PromptTimeline.single("x"), GenerationSettings(**settings)))


def test_block_noise_at_default_gamma_runs_on_cpu_with_the_intended_covariance():
    gamma = 1 / 3
    noise = sample_block_noise((1, 4, 2, 64, 64), (2, 2), gamma, torch.Generator().manual_seed(0), torch.device("cpu"))
    blocks = noise.view(1, 4, 2, 32, 2, 32, 2).permute(0, 1, 2, 3, 5, 4, 6).reshape(-1, 4)
    expected = torch.eye(4) * (1 + gamma) - gamma
    torch.testing.assert_close(torch.cov(blocks.T), expected, atol=0.03, rtol=0)


def test_a_tiny_model_with_the_schedulers_default_gamma_generates_on_cpu(tmp_path):
    engine = Engine(load_model(str(build_tiny(tmp_path, TinySpec(gamma=1 / 3)))))
    assert engine.model.is_tiny and "noise" in engine.model.label
    assert engine.model.scheduler.config.gamma == pytest.approx(1 / 3)
    (segment,) = Run(engine, request(PromptTimeline.single("x"), 33)).segments()
    assert segment.frames.shape == (33, 64, 64, 3) and segment.frames.std() > 1
