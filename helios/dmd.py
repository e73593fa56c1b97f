"""The Distilled flavour's DMD update, with each stage's schedule put on the GPU once per generation.

diffusers' HeliosDMDScheduler copies its tables to the GPU in every `set_timesteps` and reads a GPU scalar back in
every `step`; each of those makes the host wait for the GPU, which then idles while the next kernels are launched.
Here the scheduler computes the same tables on the host before the loop, the index arithmetic stays on the host, and
the update is the scheduler's own float64 arithmetic on the GPU, so the frames do not change. Mirrors
`HeliosDMDScheduler.set_timesteps` and `.step` of diffusers 0.42.1 (tests/test_dmd.py compares them bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DMDStage:
    timesteps: torch.Tensor
    sigmas: torch.Tensor
    x0_sigma: tuple[int, ...]
    renoise_sigma: tuple[int, ...]

    def step(self, flow: torch.Tensor, latents: torch.Tensor, i: int, start: torch.Tensor) -> torch.Tensor:
        """Step i: the clean-sample estimate, re-noised towards the stage's starting latents but after the last step."""
        sigma = self.sigmas[self.x0_sigma[i]].view(1, 1, 1, 1, 1)
        x0 = (latents.double() - sigma * flow.double()).to(flow.dtype)
        if i == len(self.x0_sigma) - 1:
            return x0
        sigma = self.sigmas[self.renoise_sigma[i]].view(1, 1, 1, 1, 1)
        return ((1 - sigma) * x0 + sigma * start).type_as(start)


def dmd_stages(scheduler, steps: tuple[int, ...], shifts: list[float], amplified: bool, device) -> list[DMDStage]:
    """One DMDStage per pyramid stage, from the scheduler's own tables (computed on the host, moved once)."""
    stages = []
    for stage, (n, mu) in enumerate(zip(steps, shifts)):
        scheduler.set_timesteps(n, stage, device="cpu", mu=mu, is_amplify_first_chunk=amplified)
        timesteps = scheduler.timesteps

        def nearest(t: torch.Tensor) -> int:
            """The scheduler rounds a timestep towards zero to an integer, then takes the closest table entry."""
            return int(torch.argmin((timesteps - float(int(t))).abs()))

        stages.append(DMDStage(
            timesteps=timesteps.to(device),
            sigmas=scheduler.sigmas.double().to(device),
            x0_sigma=tuple(nearest(t) for t in timesteps),
            renoise_sigma=tuple(nearest(t) for t in timesteps[1:]),
        ))
    return stages
