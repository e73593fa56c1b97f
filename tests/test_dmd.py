"""Our DMD update (tables computed before the loop) gives bit-identical latents to diffusers' HeliosDMDScheduler."""

import pytest
import torch
from diffusers import HeliosDMDScheduler

from helios.dmd import dmd_stages


@pytest.mark.parametrize("steps", [(2, 2, 2), (1, 1, 1), (3, 1, 2)])
@pytest.mark.parametrize("amplified", [False, True])
def test_dmd_step_matches_diffusers(steps, amplified):
    shifts = [0.61, 0.74, 1.02]
    ours = dmd_stages(HeliosDMDScheduler(), steps, shifts, amplified, "cpu")
    reference = HeliosDMDScheduler()
    g = torch.Generator().manual_seed(sum(steps) + amplified)
    for stage, (n, mu) in enumerate(zip(steps, shifts)):
        reference.set_timesteps(n, stage, device="cpu", mu=mu, is_amplify_first_chunk=amplified)
        assert torch.equal(ours[stage].timesteps, reference.timesteps)
        start = torch.randn(1, 4, 3, 8, 8, generator=g)
        latents = start
        for i, t in enumerate(reference.timesteps):
            flow = torch.randn(latents.shape, generator=g).bfloat16()
            expected = reference.step(
                flow, t, latents, return_dict=False, cur_sampling_step=i, dmd_noisy_tensor=start,
                dmd_sigmas=reference.sigmas, dmd_timesteps=reference.timesteps, all_timesteps=reference.timesteps,
            )[0]
            got = ours[stage].step(flow, latents, i, start)
            assert got.dtype == expected.dtype
            assert torch.equal(got, expected), (stage, i)
            latents = got
