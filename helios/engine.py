"""The streaming generation loop: a request in, decoded segments out, one at a time, as soon as each is ready.

Same math and the same random draws, in the same order, as diffusers' HeliosPyramidPipeline / HeliosPipeline,
so one seed gives the reference's frames; on top: a live prompt timeline, per-step progress, cancel, and runs that
continue exactly where an earlier one stopped.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from diffusers.utils.torch_utils import randn_tensor

from .context import ContextLatents
from .denoise import Denoiser, SamplingPlan, SegmentContext
from .errors import BadInput
from .faster.cuda_graphs import GraphedForward
from .fit.tiers import GIB, workspace_bytes
from .limits import FRAMES_PER_SEGMENT, LATENT_FRAMES, MAX_SEED, SPATIAL_COMPRESSION, Limits
from .loading import HeliosModel
from .request import GenerationRequest
from .segment import StepProgress, Stopwatch
from .text import PromptEncoder
from .timeline import Mix, PromptTimeline, Strengths
from .vae_passes import LATENTS_PER_PASS, decode_latents


@dataclass
class Denoised:
    """A segment's latents on their way to the decoder, with the state a continuation after it starts from."""

    index: int
    prompts: Mix
    strengths: Strengths
    latents: torch.Tensor
    watch: Stopwatch
    prefix: torch.Tensor | None
    history: torch.Tensor
    generator_state: torch.Tensor


@dataclass(frozen=True)
class EngineOptions:
    """How the engine drives a loaded model; what changes the model itself is its `Placement`, fixed at load."""

    cuda_graphs: bool = True
    vae_latents_per_pass: int = LATENTS_PER_PASS
    """Latents per VAE pass, decoding and encoding: wider is faster and holds more activation memory."""
    limits: Limits = Limits()


class Engine:
    """One per loaded model: single-GPU maths, no threads; `run.Run` takes turns on it, one run at a time.

    Creating it touches no GPU: its GPU state is made on first use, so a ZeroGPU Space can build it at start-up.
    """

    def __init__(self, model: HeliosModel, options: EngineOptions = EngineOptions()):
        self.model = model
        self.options = options
        self.prompts = PromptEncoder(model.tokenizer, model.text_encoder, model.device, model.dtype)
        self.context = ContextLatents(model, options.vae_latents_per_pass)
        self._graphed_blocks = (0, False)
        """The blocks (`HeliosModel.blocks_version`) the CUDA graphs in `forward` were captured with."""

    @property
    def uses_cuda_graphs(self) -> bool:
        return self.model.device.type == "cuda" and self.options.cuda_graphs and self.model.fit.cuda_graphs

    @functools.cached_property
    def forward(self) -> GraphedForward | None:
        return GraphedForward(self.model.transformer) if self.uses_cuda_graphs else None

    @functools.cached_property
    def decode_stream(self) -> torch.cuda.Stream | None:
        """One for the engine's life: what the allocator caches for a stream serves that stream alone."""
        return torch.cuda.Stream(self.model.device, priority=-1) if self.model.device.type == "cuda" else None

    def plan(self, request: GenerationRequest) -> SamplingPlan:
        """Validates the request (BadInput names the first problem) and says how its segments are sampled."""
        s, flavour = request.settings, self.model.flavour
        m = flavour.size_multiple
        if not all(isinstance(v, int) and v > 0 for v in (s.height, s.width)) or s.height % m or s.width % m:
            raise BadInput(
                f"Height and width must be positive multiples of {m} for this model (got {s.height}x{s.width}): "
                "try 384x640."
            )
        if not self.model.fit.fits(s.height, s.width):
            room = self.model.fit.workspace_budget
            raise BadInput(
                f"{s.height}x{s.width} needs about {workspace_bytes(s.height, s.width) / GIB:.1f} GiB of GPU memory "
                f"beside the weights, and {max(room, 0) / GIB:.1f} GiB is left with the {self.model.fit.tier.name} "
                "tier: choose a smaller resolution, or a tier that keeps less on the GPU (--memory)."
            )
        if not isinstance(s.num_frames, int) or s.num_frames < 1:
            raise BadInput(f"The number of frames must be a whole number, 1 or more (got {s.num_frames!r}).")
        limits = self.options.limits
        if not request.endless and s.num_segments > limits.max_segments:
            raise BadInput(
                f"{s.num_frames} frames is {s.num_segments} segments; at most {limits.max_segments} "
                f"({limits.max_segments * FRAMES_PER_SEGMENT} frames) fit in one request: continue the video instead."
            )
        pyramid_steps = tuple(s.pyramid_steps or flavour.default_pyramid_steps)
        stages = self.model.scheduler.config.get("stages", 3)
        if flavour.pyramid and (
            len(pyramid_steps) != stages or any(int(n) != n or not 1 <= n <= limits.max_steps for n in pyramid_steps)
        ):
            raise BadInput(
                f"Steps per stage must be {stages} whole numbers from 1 to {limits.max_steps}, like 2,2,2 (got "
                f"{pyramid_steps})."
            )
        steps = s.num_inference_steps or flavour.default_steps
        if not flavour.pyramid and (not isinstance(steps, int) or not 1 <= steps <= limits.max_steps):
            raise BadInput(
                f"The number of inference steps must be a whole number from 1 to {limits.max_steps} (got {steps!r})."
            )
        guidance = flavour.default_guidance if s.guidance_scale is None else float(s.guidance_scale)
        if not 0 <= guidance <= 30:
            raise BadInput(f"Guidance must be between 0 and 30 (got {guidance}).")
        if sum(x is not None for x in (request.image, request.video, request.after)) > 1:
            raise BadInput("Give one context: an image starts a video, a video or a finished run is continued.")
        if request.video is not None and len(request.video) > limits.max_context_frames:
            raise BadInput(
                f"The video to continue has {len(request.video)} frames; at most {limits.max_context_frames} are "
                "read: trim it."
            )
        after = request.after
        if after is not None:
            if after.model != self.model.label:
                raise BadInput("That run was made by another model: continue it with the model that made it.")
            if (after.height, after.width, after.history_sizes) != (s.height, s.width, s.history_sizes):
                raise BadInput(
                    f"A continued video keeps its size: use {after.height}x{after.width} (got {s.height}x{s.width})."
                )
        if isinstance(s.seed, bool) or not isinstance(s.seed, int) or not 0 <= s.seed <= MAX_SEED:
            raise BadInput(f"The seed must be a whole number from 0 to {MAX_SEED} (got {s.seed!r}).")
        names = [f.name for f in request.loras]
        if len(set(names)) < len(names):
            raise BadInput("Two LoRA adapters share a name (their files' stem): rename one of the files.")
        if request.loras and (self.model.fit.placement.faster.aot != "off" or self.model.aot_beside is not None):
            raise BadInput(
                "These transformer blocks are compiled ahead of time, without LoRA layers: start with --aot off to "
                "use LoRA adapters."
            )
        self.model.lora.check(request.loras)
        self.check_timeline(request.timeline, request.total_segments, names)
        return SamplingPlan(flavour, tuple(int(n) for n in pyramid_steps), steps, guidance)

    def check_timeline(self, timeline: PromptTimeline, segments: int | None, adapters: list[str]) -> None:
        """For a new request and for a live edit alike: its rows, no prompt longer than the model reads, and no
        adapter that is not among the request's."""
        timeline.check(segments)
        for prompt in timeline.prompts:
            self.prompts.check_length(prompt)
        for name in timeline.adapters:
            if name not in adapters:
                loaded = f"loaded: {', '.join(adapters)}" if adapters else "none is loaded"
                raise BadInput(
                    f"The timeline names LoRA {name!r}, which is not loaded ({loaded}): load it with --lora."
                )

    def denoise(self, request: GenerationRequest, plan: SamplingPlan,
                cue_at: Callable[[int], tuple[Mix, dict[str, float]]],
                on_step: Callable[[StepProgress], None]) -> Iterator[Denoised]:
        """The request's segments, denoised one after another. `cue_at(k)` is segment k's prompt mix and adapter
        strengths when k starts (the timeline may change while the request runs); `on_step` hears of every step and
        stops the denoising by raising Cancelled, as diffusers' `callback_on_step_end` and `interrupt` do."""
        model, s = self.model, request.settings
        device = model.device
        model.lora.use(request.loras)
        generator = torch.Generator(device=device).manual_seed(s.seed)
        latent_shape = (LATENT_FRAMES, s.height // SPATIAL_COMPRESSION, s.width // SPATIAL_COMPRESSION)
        denoise = Denoiser(model.transformer, model.scheduler, plan, generator, device, latent_shape, self.forward)
        uncond = self.prompts.encode(s.negative_prompt) if plan.guided else None
        for prompt in request.timeline.prompts:
            self.prompts.encode(prompt)

        after = request.after
        if after is None:
            prefix, history = self.context.prepare(request, generator)
        else:
            generator.set_state(after.generator_state)
            prefix, history = after.prefix, after.history
        indices = {name: t.to(device) for name, t in _history_indices(s.history_sizes).items()}
        first, total = request.first_segment, request.total_segments
        for k in range(first, total) if total is not None else itertools.count(first):
            if model.aot_beside is not None:
                model.aot_beside.switch()
            if self._graphed_blocks != model.blocks_version and self.forward is not None:
                self.forward.forget()
            self._graphed_blocks = model.blocks_version
            watch = Stopwatch(device)
            watch.mark()
            mix, strengths = cue_at(k)
            model.lora.set(strengths)
            long, mid, short1x = history.split(sorted(s.history_sizes, reverse=True), dim=2)
            anchor = torch.zeros_like(short1x[:, :, :1]) if prefix is None else prefix
            history_inputs = dict(
                latents_history_short=torch.cat([anchor, short1x], dim=2).to(model.dtype),
                latents_history_mid=mid.to(model.dtype),
                latents_history_long=long.to(model.dtype),
                **indices,
            )
            ctx = SegmentContext(self.prompts.mix(mix), uncond, history_inputs)
            latents = randn_tensor(
                (1, model.transformer.config.in_channels, *latent_shape),
                generator=generator, device=device, dtype=torch.float32,
            )
            total_steps = plan.steps_in_segment(k == 0)
            step = iter(range(1, total_steps + 1))
            on_step(StepProgress(k, total, 0, total_steps))
            latents = denoise(latents, ctx, k == 0, lambda: on_step(StepProgress(k, total, next(step), total_steps)))
            if prefix is None:
                prefix = latents[:, :, :1]
            history = torch.cat([history, latents], dim=2)[:, :, -history.shape[2]:]
            watch.mark()
            yield Denoised(k, mix, tuple(strengths.items()), latents, watch, prefix, history, generator.get_state())

    def decode(self, latents: torch.Tensor, watch: Stopwatch) -> torch.Tensor:
        """Latents to uint8 frames (T, H, W, 3) on the host, decoded on the engine's decode stream once the
        denoising that made them is done; the copy to the host is finished when `watch.seconds()` returns."""
        stream = self.decode_stream
        with torch.inference_mode(), torch.cuda.stream(stream) if stream else contextlib.nullcontext():
            if stream:
                stream.wait_event(watch.last_event)
                latents.record_stream(stream)
            mean, inv_std = self.context.latent_stats
            scaled = latents.to(self.model.vae.dtype) / inv_std + mean
            video = decode_latents(self.model.vae, scaled, self.options.vae_latents_per_pass)[0]
            video = (video.float() * 0.5 + 0.5).clamp(0, 1)
            frames = (
                (video * 255).round().to(torch.uint8).permute(1, 2, 3, 0).to("cpu", non_blocking=stream is not None)
            )
            watch.mark()
        return frames


def _history_indices(history_sizes: tuple[int, int, int]) -> dict[str, torch.Tensor]:
    """RoPE frame positions: anchor, long, mid, 1x history, then the segment's own latent frames. The caller moves
    them to the GPU once: left on the host, every transformer call would copy them and wait for the GPU."""
    sizes = sorted(history_sizes, reverse=True)
    prefix, long, mid, short1x, current = torch.arange(1 + sum(sizes) + LATENT_FRAMES).split([1, *sizes, LATENT_FRAMES])
    return dict(
        indices_hidden_states=current.unsqueeze(0),
        indices_latents_history_short=torch.cat([prefix, short1x]).unsqueeze(0),
        indices_latents_history_mid=mid.unsqueeze(0),
        indices_latents_history_long=long.unsqueeze(0),
    )
