import threading

import numpy as np
import pytest
import torch

from helios.control import GenerationControl
from helios.engine import Engine
from helios.errors import BadInput
from helios.loading import load_model
from helios.noise import sample_block_noise
from helios.request import GenerationRequest, GenerationSettings
from helios.timeline import PromptTimeline, TimelineEntry

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
    segments = list(engine.generate(request(PromptTimeline.single("waves"), frames=70)))
    assert [s.index for s in segments] == [0, 1, 2]
    assert [(s.frame_start, s.frame_end) for s in segments] == [(0, 33), (33, 66), (66, 97)]
    for s in segments:
        assert s.frames.dtype == np.uint8 and s.frames.shape[1:] == (64, 64, 3)
        assert s.prompts == (("waves", 1.0),)
        assert 0 < s.timings.denoise_s < s.timings.total_s and s.timings.decode_s > 0 and s.fps > 0


def test_two_prompt_crossfade_conditions_each_segment_on_the_lerp(engine, forwards):
    a, b = "a calm sea at dawn", "a storm at night"
    timeline = PromptTimeline((TimelineEntry(0, a), TimelineEntry(1, b)), crossfade=2)
    segments = list(engine.generate(request(timeline)))
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


def test_timeline_change_while_running_applies_from_the_next_segment_to_start(engine, forwards):
    control = GenerationControl()
    stream = engine.generate(request(PromptTimeline.single("a quiet forest")), control)
    first = next(stream)
    control.set_timeline(PromptTimeline((TimelineEntry(0, "a quiet forest"), TimelineEntry(1, "a forest fire")), 0))
    prompts = [first.prompts] + [s.prompts for s in stream]
    old, new = (("a quiet forest", 1.0),), (("a forest fire", 1.0),)
    switch = prompts.index(new)
    assert switch in (1, 2), "the segment being denoised when the change arrives is the only one that keeps the old prompt"
    assert prompts == [old] * switch + [new] * (4 - switch)
    torch.testing.assert_close(forwards[-1], engine.prompts.encode("a forest fire"))


def test_cancel_stops_within_one_step_and_frees_the_engine(engine, forwards):
    seen = []

    def on_step(p):
        seen.append(p)
        if p.step == 2:
            control.cancel()

    control = GenerationControl(on_step=on_step)
    segments = list(engine.generate(request(PromptTimeline.single("a train")), control))
    assert segments == []
    assert len(forwards) == 2, "no denoising step may start after the cancel"
    assert len(list(engine.generate(request(PromptTimeline.single("a train"), frames=33)))) == 1


def test_cancel_from_another_thread(engine):
    started = threading.Event()
    control = GenerationControl(on_step=lambda p: started.set())
    out = []
    worker = threading.Thread(target=lambda: out.extend(engine.generate(request(PromptTimeline.single("x"), 33 * 20), control)))
    worker.start()
    assert started.wait(30)
    control.cancel()
    worker.join(30)
    assert not worker.is_alive() and len(out) < 20


def test_one_generation_at_a_time(engine):
    stream = engine.generate(request(PromptTimeline.single("x"), 66))
    next(stream)
    with pytest.raises(BadInput, match="busy"):
        next(engine.generate(request(PromptTimeline.single("y"), 33)))
    stream.close()


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(height=100, width=64), "multiples of 64"),
        (dict(height=64, width=64, num_frames=0), "frames"),
        (dict(height=64, width=64, num_frames=33 * 500), "at most"),
        (dict(height=64, width=64, pyramid_steps=(1, 1)), "Steps per stage"),
        (dict(height=64, width=64, guidance_scale=-1.0), "Guidance"),
    ],
)
def test_bad_settings_are_refused_before_any_work(engine, settings, message):
    with pytest.raises(BadInput, match=message):
        next(engine.generate(GenerationRequest(PromptTimeline.single("x"), GenerationSettings(**settings))))


def test_block_noise_at_default_gamma_runs_on_cpu_with_the_intended_covariance():
    gamma = 1 / 3
    noise = sample_block_noise((1, 4, 2, 64, 64), (2, 2), gamma, torch.Generator().manual_seed(0), torch.device("cpu"))
    blocks = noise.view(1, 4, 2, 32, 2, 32, 2).permute(0, 1, 2, 3, 5, 4, 6).reshape(-1, 4)
    expected = torch.eye(4) * (1 + gamma) - gamma
    torch.testing.assert_close(torch.cov(blocks.T), expected, atol=0.03, rtol=0)


def test_tiny_preset_with_default_gamma_generates_on_cpu():
    engine = Engine(load_model("tiny"))
    assert engine.model.is_tiny and "noise" in engine.model.label
    assert engine.model.scheduler.config.gamma == pytest.approx(1 / 3)
    (segment,) = engine.generate(request(PromptTimeline.single("x"), 33))
    assert segment.frames.shape == (33, 64, 64, 3) and segment.frames.std() > 1
