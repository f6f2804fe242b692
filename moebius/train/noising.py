"""The training draws of the forward diffusion process (paper Sec. 3.1 and 4.1; official train_demo.sh).

The schedule itself (scaled-linear β, z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε, x̂0 from an ε-prediction) is
the one ``moebius.diffusion.schedule.NoiseSchedule`` the sampler uses. Timesteps are drawn
log-normally, t = ⌊1000·sigmoid(N(0,1))⌋ (official ``--lognorm_t``), or uniformly; the noise carries the official noise offset
(ε + offset·N(0,1) per sample and channel). Every draw takes an explicit ``torch.Generator``, so a
training step's randomness is a function of (seed, step, rank) and a resumed run repeats it exactly.
"""

from __future__ import annotations

from typing import Literal

import torch

from moebius.errors import TrainError


def sample_timesteps(
    batch: int,
    generator: torch.Generator,
    sampling: Literal["lognorm", "uniform"] = "lognorm",
    num_train_timesteps: int = 1000,
) -> torch.Tensor:
    """(batch,) long timesteps: ⌊T·sigmoid(N(0,1))⌋ (official --lognorm_t) or uniform on [0, T)."""
    if sampling == "lognorm":
        u = torch.sigmoid(torch.randn(batch, generator=generator))
        return (u * num_train_timesteps).floor().long().clamp_(0, num_train_timesteps - 1)
    if sampling == "uniform":
        return torch.randint(0, num_train_timesteps, (batch,), generator=generator)
    raise TrainError(f"unknown timestep sampling {sampling!r} (lognorm | uniform)")


def sample_noise(shape: tuple[int, ...], generator: torch.Generator, offset: float = 0.0) -> torch.Tensor:
    """Gaussian noise plus the offset term offset·N(0,1) shared by each (sample, channel) plane."""
    noise = torch.randn(shape, generator=generator)
    if offset:
        noise = noise + offset * torch.randn(shape[:2] + (1,) * (len(shape) - 2), generator=generator)
    return noise
