"""The streaming generation loop: a request in, decoded segments out, one at a time, as soon as each is ready.

Same math and the same random draws, in the same order, as diffusers' HeliosPyramidPipeline / HeliosPipeline,
so one seed gives the reference's frames; on top: a live prompt timeline, per-step progress and cancel.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Iterator

import torch
from PIL import Image
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from .control import GenerationControl, StepProgress
from .cuda_graphs import GraphedForward
from .denoise import Denoiser, SamplingPlan, SegmentContext
from .errors import BadInput, Cancelled
from .loading import HeliosModel
from .request import GenerationRequest, GenerationSettings
from .speed import FastPaths, apply_fast_paths
from .segment import Segment, SegmentTimings, Stopwatch
from .text import PromptEncoder
from .timeline import FRAMES_PER_SEGMENT
from .vae_decode import decode_latents

LATENT_FRAMES = 9
MAX_SEGMENTS = 120
NOISE_SIGMA = (0.111, 0.135)


class Engine:
    """One per loaded model; generations run one at a time (the scheduler and the GPU are shared)."""

    def __init__(self, model: HeliosModel, fast_paths: FastPaths | None = FastPaths()):
        if fast_paths is not None:
            apply_fast_paths(model, fast_paths)
        self.model = model
        self.fast_paths = fast_paths
        self.latents_per_pass = fast_paths.vae_latents_per_pass if fast_paths else 1
        cuda = model.device.type == "cuda"
        self.forward = GraphedForward(model.transformer) if cuda and fast_paths and fast_paths.cuda_graphs else None
        self.decode_stream = torch.cuda.Stream(model.device, priority=-1) if cuda else None
        self.prompts = PromptEncoder(model.tokenizer, model.text_encoder, model.device, model.dtype)
        self.video_processor = VideoProcessor(vae_scale_factor=8)
        cfg = model.vae.config
        self.latents_mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(model.device, model.vae.dtype)
        self.latents_inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1).to(
            model.device, model.vae.dtype
        )
        self._busy = threading.Lock()

    def plan(self, request: GenerationRequest) -> SamplingPlan:
        """Check the request against this model; raise BadInput naming the first problem."""
        s, flavour = request.settings, self.model.flavour
        m = flavour.size_multiple
        if not all(isinstance(v, int) and v > 0 for v in (s.height, s.width)) or s.height % m or s.width % m:
            raise BadInput(
                f"Height and width must be positive multiples of {m} for this model (got {s.height}x{s.width}): "
                "try 384x640."
            )
        if not isinstance(s.num_frames, int) or s.num_frames < 1:
            raise BadInput(f"The number of frames must be a whole number, 1 or more (got {s.num_frames!r}).")
        if s.num_segments > MAX_SEGMENTS:
            raise BadInput(
                f"{s.num_frames} frames is {s.num_segments} segments; at most {MAX_SEGMENTS} "
                f"({MAX_SEGMENTS * FRAMES_PER_SEGMENT} frames) fit in one request: continue the video instead."
            )
        pyramid_steps = tuple(s.pyramid_steps or flavour.default_pyramid_steps)
        stages = self.model.scheduler.config.get("stages", 3)
        if flavour.pyramid and (len(pyramid_steps) != stages or any(int(n) != n or n < 1 for n in pyramid_steps)):
            raise BadInput(f"Steps per stage must be {stages} whole numbers, 1 or more, like 2,2,2 (got {pyramid_steps}).")
        steps = s.num_inference_steps or flavour.default_steps
        if not isinstance(steps, int) or steps < 1:
            raise BadInput(f"The number of inference steps must be a whole number, 1 or more (got {steps!r}).")
        guidance = flavour.default_guidance if s.guidance_scale is None else float(s.guidance_scale)
        if not 0 <= guidance <= 30:
            raise BadInput(f"Guidance must be between 0 and 30 (got {guidance}).")
        if request.image is not None and request.video is not None:
            raise BadInput("Give an image or a video, not both: an image starts a video, a video is continued.")
        request.timeline.check(s.num_segments)
        return SamplingPlan(flavour, tuple(int(n) for n in pyramid_steps), steps, guidance)

    def generate(self, request: GenerationRequest, control: GenerationControl | None = None) -> Iterator[Segment]:
        """Yield each segment once decoded; a cancel ends the iteration after the current denoising step.

        Denoising runs in a worker thread and decoding in the caller's, on its own CUDA stream, so segment k
        is decoded and handed out while segment k+1 is already being denoised. Segment k+1 is queued on the GPU
        only after k's decode, and that stream's higher priority lets k reach the user first. The stream lives as
        long as the engine: what the allocator caches for a stream serves that stream alone.
        """
        plan = self.plan(request)
        control = control or GenerationControl()
        if not self._busy.acquire(blocking=False):
            raise BadInput("The engine is busy with another generation: wait for it to finish.")
        handoff: queue.Queue = queue.Queue(maxsize=1)
        worker = threading.Thread(target=self._denoise_all, args=(request, plan, control, handoff), daemon=True)
        try:
            worker.start()
            yield from self._decode_all(request.settings, handoff)
        finally:
            control.cancel_quietly()
            while worker.is_alive():
                try:
                    handoff.get(timeout=0.1)
                    handoff.task_done()
                except queue.Empty:
                    pass
            self._busy.release()

    def _denoise_all(self, request, plan: SamplingPlan, control: GenerationControl, handoff: queue.Queue) -> None:
        try:
            with torch.inference_mode():
                for item in self._denoise_segments(request, plan, control):
                    handoff.put(item)
                    handoff.join()  # the next segment starts once this one's decode is queued: at most one ahead
        except Cancelled:
            pass
        except BaseException as exc:  # raised again in the caller's thread
            handoff.put(exc)
        handoff.put(None)

    def _denoise_segments(self, request: GenerationRequest, plan: SamplingPlan, control: GenerationControl):
        model, s = self.model, request.settings
        device = model.device
        generator = torch.Generator(device=device).manual_seed(s.seed)
        latent_shape = (LATENT_FRAMES, s.height // 8, s.width // 8)
        denoise = Denoiser(model.transformer, model.scheduler, plan, generator, device, latent_shape, self.forward)
        uncond = self.prompts.encode(s.negative_prompt) if plan.guided else None
        for prompt in request.timeline.prompts:
            self.prompts.encode(prompt)

        prefix, history = self._context(request, generator)
        indices = {name: t.to(device) for name, t in _history_indices(s.history_sizes).items()}
        n = s.num_segments
        for k in range(n):
            watch = Stopwatch(device)
            watch.mark()
            mix = control.timeline(request.timeline).mix(k)
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
            control.step(StepProgress(k, n, 0, total_steps))
            latents = denoise(latents, ctx, k == 0, lambda: control.step(StepProgress(k, n, next(step), total_steps)))
            if prefix is None:
                prefix = latents[:, :, :1]
            history = torch.cat([history, latents], dim=2)[:, :, -history.shape[2]:]
            watch.mark()
            yield _Denoised(k, n, mix, latents, watch)

    def _decode_all(self, s: GenerationSettings, handoff: queue.Queue) -> Iterator[Segment]:
        stream = self.decode_stream
        cuda = stream is not None
        frames_left = s.output_frames
        while (item := handoff.get()) is not None:
            try:
                if isinstance(item, BaseException):
                    raise item
                with torch.inference_mode(), torch.cuda.stream(stream) if cuda else contextlib.nullcontext():
                    if cuda:
                        stream.wait_event(item.watch.last_event)
                        item.latents.record_stream(stream)
                    frames = self._decode(item.latents)[:frames_left]
                    frames = frames.to("cpu", non_blocking=cuda)
                    item.watch.mark()
            finally:
                handoff.task_done()
            denoise_s, decode_s = item.watch.seconds()
            start = s.output_frames - frames_left
            frames_left -= len(frames)
            timings = SegmentTimings(denoise_s, decode_s, denoise_s + decode_s)
            yield Segment(item.index, item.count, frames.numpy(), start, item.prompts, timings)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents to uint8 frames (T, H, W, 3) on the device."""
        scaled = latents.to(self.model.vae.dtype) / self.latents_inv_std + self.latents_mean
        video = decode_latents(self.model.vae, scaled, self.latents_per_pass)[0]
        video = (video.float() * 0.5 + 0.5).clamp(0, 1)
        return (video * 255).round().to(torch.uint8).permute(1, 2, 3, 0)

    def _encode(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        pixels = pixels.to(self.model.device, self.model.vae.dtype)
        latents = self.model.vae.encode(pixels).latent_dist.sample(generator=generator)
        return ((latents - self.latents_mean) * self.latents_inv_std).float()

    def _noisy(self, latents: torch.Tensor, generator: torch.Generator, per_frame: bool = False) -> torch.Tensor:
        """Blend conditioning latents with a little noise, drawn as the reference draws it."""
        lo, hi = NOISE_SIGMA
        device = self.model.device
        count = latents.shape[2] if per_frame else 1
        sigma = torch.rand(count, device=device, generator=generator) * (hi - lo) + lo
        if per_frame:
            sigma = sigma.view(1, 1, count, 1, 1)
        return sigma * randn_tensor(latents.shape, generator=generator, device=device) + (1 - sigma) * latents

    def _context(self, request: GenerationRequest, generator: torch.Generator):
        """The first-frame anchor (None for text-to-video) and the initial history latents."""
        s = request.settings
        c = self.model.transformer.config.in_channels
        history = torch.zeros(1, c, sum(s.history_sizes), s.height // 8, s.width // 8, device=self.model.device)
        if request.image is not None:
            image = self.video_processor.preprocess(request.image, height=s.height, width=s.width)
            prefix = self._encode(image.unsqueeze(2), generator)
            still = image.unsqueeze(2).repeat(1, 1, (LATENT_FRAMES - 1) * 4 + 1, 1, 1)
            fake = self._encode(still, generator)[:, :, -1:]
            prefix = self._noisy(prefix, generator)
            fake = self._noisy(fake, generator)
            return prefix, torch.cat([history[:, :, :-1], fake], dim=2)
        if request.video is not None:
            video = self.video_processor.preprocess_video([Image.fromarray(f) for f in request.video], height=s.height, width=s.width)
            window = (LATENT_FRAMES - 1) * 4 + 1
            chunks = video.shape[2] // window
            start = video.shape[2] - chunks * window
            prefix = self._encode(video[:, :, :1], generator)
            latents = [self._encode(video[:, :, start + i * window : start + (i + 1) * window], generator) for i in range(chunks)]
            prefix = self._noisy(prefix, generator)
            noisy = [self._noisy(chunk, generator, per_frame=True) for chunk in latents]
            video_latents = torch.cat(noisy, dim=2)
            keep = history.shape[2] - video_latents.shape[2]
            history = torch.cat([history[:, :, :keep], video_latents], dim=2) if keep > 0 else video_latents
            return prefix, history[:, :, -sum(s.history_sizes):]
        return None, history


@dataclass(frozen=True)
class _Denoised:
    index: int
    count: int
    prompts: tuple[tuple[str, float], ...]
    latents: torch.Tensor
    watch: Stopwatch


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
