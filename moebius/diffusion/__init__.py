"""Latents, noise schedule, DDIM sampler with LCG classifier-free guidance, paste-back (paper Sec. 4.1)."""

from moebius.diffusion.composite import PASTE_MODES, blurred_mask, composite, finish, paste_back, paste_leak
from moebius.diffusion.latents import decode, denoiser_input, encode, latent_mask, vae_factor
from moebius.diffusion.sampler import ddim_sample, ddim_step, inpaint_batch, model_sampling, sampling_timesteps
from moebius.diffusion.schedule import NoiseSchedule, ddim_timesteps, scaled_linear_schedule, truncate_by_strength
from moebius.diffusion.seeding import image_generators
from moebius.errors import SamplerError
from moebius.seeding import image_seed

__all__ = [
    "PASTE_MODES", "NoiseSchedule", "SamplerError", "blurred_mask", "composite", "ddim_sample", "ddim_step",
    "ddim_timesteps", "decode", "denoiser_input", "encode", "finish", "image_generators",
    "image_seed", "inpaint_batch", "latent_mask", "model_sampling", "paste_back", "paste_leak",
    "sampling_timesteps", "scaled_linear_schedule", "truncate_by_strength", "vae_factor",
]
