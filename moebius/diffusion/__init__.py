"""Latents, noise schedule, DDIM sampler with LCG classifier-free guidance, paste-back (paper Sec. 4.1)."""

from moebius.diffusion.composite import composite, gaussian_blur, paste_back
from moebius.diffusion.latents import decode, denoiser_input, encode, latent_mask, vae_factor
from moebius.diffusion.sampler import (
    ddim_sample,
    ddim_step,
    inpaint_batch,
    sampling_timesteps,
)
from moebius.diffusion.schedule import (
    NoiseSchedule,
    ddim_timesteps,
    scaled_linear_schedule,
    truncate_by_strength,
)
from moebius.diffusion.seeding import image_generators
from moebius.errors import SamplerError
from moebius.seeding import image_seed

__all__ = [
    "NoiseSchedule", "SamplerError", "composite", "ddim_sample", "ddim_step", "ddim_timesteps", "decode",
    "denoiser_input", "encode", "gaussian_blur", "image_generators", "image_seed", "inpaint_batch",
    "latent_mask", "paste_back", "sampling_timesteps", "scaled_linear_schedule", "truncate_by_strength",
    "vae_factor",
]
