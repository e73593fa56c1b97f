"""Denoising one segment's latents, as the reference pipelines do: pyramid stages (Distilled, Mid) or one
full-resolution schedule (Base), with CFG or CFG-Zero* where the flavour uses guidance. Mirrors the chunk loop of
`HeliosPyramidPipeline.__call__` and `HeliosPipeline.__call__` in diffusers 0.42.1."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .dmd import dmd_stages
from .flavour import Flavour
from .noise import sample_block_noise

ZERO_INIT_STEPS = 1


@dataclass(frozen=True)
class SamplingPlan:
    flavour: Flavour
    pyramid_steps: tuple[int, ...]
    num_inference_steps: int
    guidance_scale: float

    @property
    def guided(self) -> bool:
        return self.guidance_scale > 1.0

    @property
    def amplify_first(self) -> bool:
        return self.flavour.distilled

    def steps_in_segment(self, first: bool) -> int:
        if not self.flavour.pyramid:
            return self.num_inference_steps
        return sum(self.pyramid_steps) * (2 if first and self.amplify_first else 1)


@dataclass
class SegmentContext:
    """Everything the transformer sees besides the noisy latents: text and the compressed history."""

    cond: torch.Tensor
    uncond: torch.Tensor | None
    history: dict[str, torch.Tensor]


def calculate_shift(seq_len: int, config) -> float:
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base_shift, max_shift = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    slope = (max_shift - base_shift) / (max_len - base_len)
    return seq_len * slope + base_shift - slope * base_len


def optimized_scale(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """CFG-Zero*: the projection of the conditional prediction onto the unconditional one."""
    positive, negative = positive.float(), negative.float()
    return (positive * negative).sum(1, keepdim=True) / ((negative**2).sum(1, keepdim=True) + 1e-8)


class Denoiser:
    """Everything that depends only on the request is worked out here, before the loop: the DMD tables go to the GPU
    once, so the loop never waits for the GPU (see dmd.py)."""

    def __init__(self, transformer, scheduler, plan: SamplingPlan, generator: torch.Generator, device,
                 latent_shape: tuple[int, int, int], forward: Callable[..., torch.Tensor] | None = None):
        self.forward = forward or (lambda **inputs: transformer(**inputs, return_dict=False)[0])
        self.scheduler = scheduler
        self.plan = plan
        self.generator = generator
        self.device = device
        self.dtype = transformer.dtype
        self.patch = tuple(transformer.config.patch_size)
        stages = len(plan.pyramid_steps) if plan.flavour.pyramid else 1
        self.shifts = [
            calculate_shift(math.prod(shape) // math.prod(self.patch), scheduler.config)
            for shape in _stage_shapes(latent_shape, stages)
        ]
        self.dmd = None
        if plan.flavour.distilled:
            self.dmd = {
                first: dmd_stages(scheduler, plan.pyramid_steps, self.shifts, plan.amplify_first and first, device)
                for first in (True, False)
            }

    def __call__(self, latents: torch.Tensor, ctx: SegmentContext, first: bool, tick: Callable[[], None]):
        if self.plan.flavour.pyramid:
            return self._pyramid(latents, ctx, first, tick)
        return self._plain(latents, ctx, tick)

    def _forward(self, latents, timestep, embeds, ctx: SegmentContext):
        return self.forward(
            hidden_states=latents.to(self.dtype), timestep=timestep, encoder_hidden_states=embeds, **ctx.history
        )

    def _predict(self, latents, timestep, ctx: SegmentContext, zero_init: bool = False):
        cond = self._forward(latents, timestep, ctx.cond, ctx)
        if not self.plan.guided:
            return cond
        uncond = self._forward(latents, timestep, ctx.uncond, ctx)
        g = self.plan.guidance_scale
        if not self.plan.flavour.cfg_zero_star:
            return uncond + g * (cond - uncond)
        b = cond.shape[0]
        alpha = optimized_scale(cond.reshape(b, -1), uncond.reshape(b, -1)).view(b, 1, 1, 1, 1).to(cond.dtype)
        if zero_init:
            return cond * 0.0
        return uncond * alpha + g * (cond - uncond * alpha)

    def _resize(self, latents: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
        b, c, f, h, w = latents.shape
        frames = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        frames = F.interpolate(frames, size=size, mode=mode)
        return frames.reshape(b, f, c, *size).permute(0, 2, 1, 3, 4)

    def _pyramid(self, latents, ctx, first, tick):
        sched, plan = self.scheduler, self.plan
        stages = len(plan.pyramid_steps)
        for _ in range(stages - 1):
            latents = self._resize(latents, (latents.shape[-2] // 2, latents.shape[-1] // 2), "bilinear") * 2
        dmd = self.dmd[first] if self.dmd else None
        for stage, steps in enumerate(plan.pyramid_steps):
            if dmd:
                timesteps = dmd[stage].timesteps
            else:
                sched.set_timesteps(steps, stage, device=self.device, mu=self.shifts[stage])
                timesteps = sched.timesteps
            if stage > 0:
                latents = self._resize(latents, (latents.shape[-2] * 2, latents.shape[-1] * 2), "nearest")
                signal = 1 - sched.ori_start_sigmas[stage]
                gamma = sched.config.gamma
                alpha = 1 / (math.sqrt(1 + 1 / gamma) * (1 - signal) + signal)
                beta = alpha * (1 - signal) / math.sqrt(gamma)
                noise = sample_block_noise(latents.shape, self.patch[1:], gamma, self.generator, self.device)
                latents = alpha * latents + beta * noise.to(self.dtype)
            start = latents
            for i, t in enumerate(timesteps):
                timestep = t.expand(latents.shape[0]).to(torch.int64)
                zero_init = stage == 0 and i <= ZERO_INIT_STEPS
                pred = self._predict(latents, timestep, ctx, zero_init)
                if dmd:
                    latents = dmd[stage].step(pred, latents, i, start)
                else:
                    latents = sched.step(pred, t, latents, generator=self.generator, return_dict=False)[0]
                tick()
        return latents

    def _plain(self, latents, ctx, tick):
        sched, n = self.scheduler, self.plan.num_inference_steps
        sigmas = np.linspace(0.999, 0.0, n + 1)[:-1]
        sched.set_timesteps(n, device=self.device, sigmas=sigmas, mu=self.shifts[-1])
        for t in sched.timesteps:
            pred = self._predict(latents, t.expand(latents.shape[0]), ctx)
            latents = sched.step(pred, t, latents, generator=self.generator, return_dict=False)[0]
            tick()
        return latents


def _stage_shapes(latent_shape: tuple[int, int, int], stages: int) -> list[tuple[int, int, int]]:
    """The latent shape each stage denoises: the full size halved stages-1 times, then doubled per stage."""
    frames, h, w = latent_shape
    h, w = h >> (stages - 1), w >> (stages - 1)
    return [(frames, h << s, w << s) for s in range(stages)]
