"""The one noise schedule (training and sampling) and the DDIM timestep grid the official pipeline samples on.

Source: DDPM (Ho et al. 2020) for q(z_t | z_0) = N(√ᾱ_t z_0, (1 − ᾱ_t) I); the "scaled_linear" β
schedule of latent diffusion (β linear in √β from 0.00085 to 0.012 over 1000 steps), the same in the
official training script (``DDPMScheduler``) and pipeline (``DDIMScheduler``: scaled_linear,
clip_sample False; docs/model_facts.md), and DDIM (Song et al. 2021) timesteps with diffusers'
"leading" spacing. ``strength`` truncates the grid the way diffusers' img2img / inpaint pipelines do.

ᾱ is one float64 table. The sampler reads it in float64 (``alpha_bar``); training's ``add_noise`` /
``predict_x0`` read the same table cast to float32, as diffusers' DDPMScheduler keeps it, so the
training numbers are those of the float32 schedule training used before the two were one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moebius.errors import SamplerError


@dataclass(frozen=True)
class NoiseSchedule:
    """ᾱ_t for t = 0..N−1 (float64 so that 1 − ᾱ near t = 0 keeps its digits), and the forward process."""

    alphas_cumprod: torch.Tensor  # (N,) float64
    # DEVIATION (uncertain, official code): diffusers' DDIMScheduler defaults to set_alpha_to_one=True
    # (ᾱ_prev = 1 after the last step); SD-derived scheduler configs set it False (ᾱ_prev = ᾱ_0 ≈
    # 0.99915). The official scheduler config was not available; we use the class default.
    final_alpha_cumprod: float = 1.0

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t, or ``final_alpha_cumprod`` for t < 0 (the step past the end of the grid)."""
        if t < 0:
            return self.final_alpha_cumprod
        return float(self.alphas_cumprod[t])

    def _coeffs(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(√ᾱ_t, √(1 − ᾱ_t)) in float32, shaped to broadcast over ``like`` (B, ...)."""
        ac = self.alphas_cumprod.to(like.device)[t.long()].to(torch.float32)  # (B,)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return ac.sqrt().view(shape), (1.0 - ac).sqrt().view(shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε for a batch of timesteps ``t`` (B,), computed in float32."""
        a, s = self._coeffs(t, x0)
        return (a * x0.float() + s * noise.float()).to(x0.dtype)

    def predict_x0(self, z_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x̂0 = (z_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t (DDPMScheduler.step's pred_original_sample), float32."""
        a, s = self._coeffs(t, z_t)
        return (z_t.float() - s * eps.float()) / a


def scaled_linear_schedule(
    beta_start: float = 0.00085, beta_end: float = 0.012, num_train_timesteps: int = 1000, final_alpha_one: bool = True
) -> NoiseSchedule:
    """β_t = (linspace(√β_start, √β_end, N))², ᾱ_t = ∏(1 − β)."""
    if not 0.0 < beta_start < beta_end < 1.0:
        raise SamplerError(f"need 0 < beta_start < beta_end < 1, got {beta_start}, {beta_end}")
    if num_train_timesteps < 2:
        raise SamplerError(f"num_train_timesteps must be >= 2, got {num_train_timesteps}")
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    final = 1.0 if final_alpha_one else float(alphas_cumprod[0])
    return NoiseSchedule(alphas_cumprod=alphas_cumprod, final_alpha_cumprod=final)


def ddim_timesteps(steps: int, num_train_timesteps: int = 1000, steps_offset: int = 0) -> list[int]:
    """The full DDIM grid, descending, "leading" spacing: (k · ⌊N / steps⌋ for k < steps) reversed.

    20 steps over 1000 give [950, 900, ..., 50, 0].
    """
    if not 1 <= steps <= num_train_timesteps:
        raise SamplerError(f"steps must be in 1..{num_train_timesteps}, got {steps}")
    ratio = num_train_timesteps // steps
    return [k * ratio + steps_offset for k in reversed(range(steps))]


def step_ratio(steps: int, num_train_timesteps: int = 1000) -> int:
    """Distance between consecutive grid timesteps (DDIM's t_prev = t − ratio)."""
    return num_train_timesteps // steps


def truncate_by_strength(timesteps: list[int], strength: float) -> list[int]:
    """Keep the last ``min(⌊steps · strength⌋, steps)`` timesteps (diffusers ``get_timesteps``).

    With 20 steps and strength 0.99 this drops t = 950 and starts at t = 900: 19 model calls.
    """
    if not 0.0 < strength <= 1.0:
        raise SamplerError(f"strength must be in (0, 1], got {strength}")
    steps = len(timesteps)
    kept = min(int(steps * strength), steps)
    if kept < 1:
        raise SamplerError(f"strength {strength} with {steps} steps leaves no denoising step")
    return timesteps[steps - kept :]
