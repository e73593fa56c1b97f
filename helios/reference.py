"""diffusers' own pipeline on a loaded model's components, as one side of a comparison: the correctness oracle our
engine is tested against (tests/test_parity.py), run on the same weights with no second copy of them. It is called as
`HeliosPyramidPipeline.__call__` / `HeliosPipeline.__call__` of diffusers 0.42.1 take a request, takes one prompt, and
hands out the whole video once it is decoded; `ReferenceRun` iterates it like our `Run`, so the app and the CLI
stream, record and measure both alike."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from .engine import Engine
from .errors import BadInput, Cancelled
from .limits import FRAMES_PER_SEGMENT
from .loading import HeliosModel
from .request import GenerationRequest
from .run import Run, RunBase
from .segment import Segment, SegmentTimings, StepProgress
from .timeline import PromptTimeline

ENGINES = ("ours", "diffusers")


def check_reference_request(request: GenerationRequest) -> None:
    """What diffusers' pipeline cannot take, refused before anything runs."""
    if len(request.timeline.prompts) != 1:
        raise BadInput("diffusers' pipeline takes one prompt: give the diffusers side a single-prompt timeline.")
    if request.after is not None:
        raise BadInput("diffusers' pipeline cannot continue a run: continue with our engine.")
    named = request.timeline.adapters
    strengths = [f.strength for f in request.loras if f.name not in named]
    strengths += [value for entry in request.timeline.entries for _, value in entry.lora]
    if any(strengths):
        raise BadInput(
            "diffusers' pipeline runs here without LoRA adapters (its loader needs PEFT): set their strengths to 0 on "
            "the diffusers side, or use our engine."
        )


def run_with(engine: Engine, request: GenerationRequest, which: str) -> RunBase:
    """A run of the request by `which` engine, "ours" or "diffusers"; validated (BadInput) before anything runs."""
    return ReferenceRun(engine, request) if which == "diffusers" else Run(engine, request)


class ReferenceRun(RunBase):
    """diffusers' pipeline iterated like a `Run`: a `StepProgress` at each of its steps, then, once it has decoded the
    whole video, its frames in segments of 33, each timed by its steps (the decode's time shared out evenly)."""

    engine_name = "diffusers"

    def __init__(self, engine: Engine, request: GenerationRequest):
        check_reference_request(request)
        super().__init__(engine, request)
        ends = [0]
        for k in range(request.total_segments):
            ends.append(ends[-1] + self.plan.steps_in_segment(k == 0))
        self._ends = ends
        """The count of the pipeline's steps done at each segment's end, 0 first."""

    def set_timeline(self, timeline: PromptTimeline) -> None:
        raise BadInput(
            "diffusers' pipeline takes its one prompt as it starts: its timeline cannot change while it runs."
        )

    def __iter__(self) -> Iterator[StepProgress | Segment]:
        with self._working(self._frames) as worker:
            while (event := self._events.get()) is not None:
                yield event
            try:
                frames, step_times, end = worker.result()
            except Cancelled:
                return
        segments = -(-len(frames) // FRAMES_PER_SEGMENT)
        decode_s = (end - step_times[-1]) / segments
        done = [step_times[min(n, len(step_times) - 1)] for n in self._ends]
        prompts = ((self.request.timeline.prompts[0], 1.0),)
        for k in range(segments):
            denoise_s = done[k + 1] - done[k] if k + 1 < len(done) else 0.0
            yield Segment(
                k,
                segments,
                frames[k * FRAMES_PER_SEGMENT : (k + 1) * FRAMES_PER_SEGMENT],
                k * FRAMES_PER_SEGMENT,
                prompts,
                SegmentTimings(denoise_s, decode_s, denoise_s + decode_s),
            )

    def _frames(self) -> tuple[np.ndarray, list[float], float]:
        """On the engine's denoise thread; `step_times` starts with the pipeline's start, then one a step."""
        step_times = [time.perf_counter()]

        def on_step() -> None:
            if self._cancel.is_set() or self._abandon.is_set():
                raise Cancelled("Generation stopped.")
            step_times.append(time.perf_counter())
            n = len(step_times) - 1
            k = min(
                next((k for k, end in enumerate(self._ends[1:]) if n <= end), self.total_segments - 1),
                self.total_segments - 1,
            )
            self._events.put(StepProgress(k, self.total_segments, n - self._ends[k], self._ends[k + 1] - self._ends[k]))

        try:
            self.engine.model.lora.use(())  # an earlier run's adapters must not reach diffusers' pipeline
            return reference_frames(self.engine.model, self.request, on_step), step_times, time.perf_counter()
        finally:
            self._events.put(None)


def reference_frames(model: HeliosModel, request: GenerationRequest,
                     on_step: Callable[[], None] | None = None) -> np.ndarray:
    """The request's frames (T, H, W, 3) uint8 from diffusers' pipeline, on the model's own modules; `on_step` is
    called after each of its denoising steps (and may raise to stop it)."""
    from diffusers import HeliosPipeline, HeliosPyramidPipeline

    check_reference_request(request)
    flavour, s = model.flavour, request.settings
    parts = dict(tokenizer=model.tokenizer, text_encoder=model.text_encoder, vae=model.vae, scheduler=model.scheduler,
                 transformer=model.transformer)
    if flavour.pyramid:
        pipe = HeliosPyramidPipeline(**parts, is_cfg_zero_star=flavour.cfg_zero_star, is_distilled=flavour.distilled)
    else:
        pipe = HeliosPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(
        prompt=request.timeline.prompts[0], negative_prompt=s.negative_prompt or None, height=s.height, width=s.width,
        num_frames=s.num_frames, generator=torch.Generator(model.device).manual_seed(s.seed), output_type="np",
        guidance_scale=flavour.default_guidance if s.guidance_scale is None else s.guidance_scale,
        history_sizes=list(s.history_sizes),
    )
    if flavour.pyramid:
        steps = s.pyramid_steps or flavour.default_pyramid_steps
        kwargs.update(pyramid_num_inference_steps_list=list(steps), is_amplify_first_chunk=flavour.distilled)
    else:
        kwargs["num_inference_steps"] = s.num_inference_steps or flavour.default_steps
    if request.image is not None:
        kwargs["image"] = request.image
    if request.video is not None:
        kwargs["video"] = [Image.fromarray(f) for f in request.video]
    if on_step is not None:
        kwargs["callback_on_step_end"] = lambda pipe, step, timestep, tensors: on_step() or {}
    with torch.inference_mode(), _contiguous_output(model.transformer):
        video = pipe(**kwargs).frames[0]
    return (np.asarray(video) * 255).round().astype(np.uint8)


@contextlib.contextmanager
def _contiguous_output(transformer):
    """diffusers 0.42.1's CFG-Zero* calls .view() on the transformer's output, which is not contiguous on every
    device: the same values, contiguous, for the pipeline's call only."""
    forward, own = transformer.forward, "forward" in vars(transformer)

    def contiguous(*args, **kwargs):
        out = forward(*args, **kwargs)
        return (out[0].contiguous(), *out[1:]) if isinstance(out, tuple) else out

    transformer.forward = contiguous
    try:
        yield
    finally:
        if own:
            transformer.forward = forward
        else:
            del transformer.forward
