"""The schedule and DDIM grid against diffusers' DDIMScheduler (the official pipeline's scheduler)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from moebius.diffusion.sampler import ddim_step
from moebius.diffusion.schedule import (
    ddim_timesteps,
    scaled_linear_schedule,
    step_ratio,
    truncate_by_strength,
)
from moebius.errors import SamplerError


def _official_scheduler() -> DDIMScheduler:
    # The settings model_facts.md lists for the official pipeline.
    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        clip_sample=False, timestep_spacing="leading",
    )


@pytest.mark.parametrize("steps", [20, 7, 50])
def test_timesteps_match_diffusers_leading(steps: int) -> None:
    sched = _official_scheduler()
    sched.set_timesteps(steps)
    assert ddim_timesteps(steps) == sched.timesteps.tolist()


def test_alphas_cumprod_match_diffusers() -> None:
    ours = scaled_linear_schedule().alphas_cumprod
    theirs = _official_scheduler().alphas_cumprod.double()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_ddim_step_matches_diffusers() -> None:
    sched = _official_scheduler()
    sched.set_timesteps(20)
    schedule = scaled_linear_schedule()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    eps = torch.randn(2, 4, 8, 8, generator=g)
    for t in (950, 500, 0):  # t = 0 steps past the grid end: ᾱ_prev = 1
        theirs = sched.step(eps, t, x, eta=0.0).prev_sample
        ours = ddim_step(x, eps, t, t - step_ratio(20), schedule)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_strength_truncation_like_the_official_pipeline() -> None:
    grid = ddim_timesteps(20)
    kept = truncate_by_strength(grid, 0.99)
    assert kept[0] == 900 and len(kept) == 19 and kept[-1] == 0
    assert truncate_by_strength(grid, 1.0) == grid
    assert truncate_by_strength(grid, 0.5)[0] == 450
    with pytest.raises(SamplerError):
        truncate_by_strength(grid, 0.01)  # ⌊20 · 0.01⌋ = 0 steps
    with pytest.raises(SamplerError):
        truncate_by_strength(grid, 1.5)
