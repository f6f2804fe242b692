"""The forward diffusion process used for training (paper Sec. 3.1 and 4.1; official train_demo.sh).

DDPM with the scaled-linear β schedule (0.00085-0.012, 1000 steps) as in Stable Diffusion / PixelHacker:
z_t = sqrt(ᾱ_t) z_0 + sqrt(1-ᾱ_t) ε. Timesteps are drawn log-normally, t = ⌊1000·sigmoid(N(0,1))⌋
(official ``--lognorm_t``), or uniformly; the noise carries the official noise offset
(ε + offset·N(0,1) per sample and channel). Every draw takes an explicit ``torch.Generator``, so a
training step's randomness is a function of (seed, step, rank) and a resumed run repeats it exactly.
"""

from __future__ import annotations

from typing import Literal

import torch

from moebius.errors import TrainError


class NoiseSchedule:
    """Scaled-linear DDPM schedule: ᾱ_t lookup, ``add_noise`` and the x̂0 implied by an ε-prediction."""

    def __init__(self, beta_start: float = 0.00085, beta_end: float = 0.012, num_train_timesteps: int = 1000) -> None:
        if not 0.0 < beta_start < beta_end < 1.0 or num_train_timesteps < 2:
            raise TrainError(f"bad noise schedule: beta {beta_start}-{beta_end}, {num_train_timesteps} steps")
        # scaled_linear: linear in sqrt(β), as diffusers' DDPMScheduler(beta_schedule="scaled_linear")
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
        self.num_train_timesteps = num_train_timesteps
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).float()  # (T,)

    def _coeffs(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ac = self.alphas_cumprod.to(like.device)[t.long()].to(torch.float32)  # (B,)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return ac.sqrt().view(shape), (1.0 - ac).sqrt().view(shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z_t = sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·ε, computed in fp32."""
        a, s = self._coeffs(t, x0)
        return (a * x0.float() + s * noise.float()).to(x0.dtype)

    def predict_x0(self, z_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x̂0 = (z_t - sqrt(1-ᾱ_t)·ε̂) / sqrt(ᾱ_t) (DDPMScheduler.step's pred_original_sample)."""
        a, s = self._coeffs(t, z_t)
        return (z_t.float() - s * eps.float()) / a


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
