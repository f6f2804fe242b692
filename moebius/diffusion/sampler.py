"""DDIM sampling with LCG classifier-free guidance: the official Moebius / PixelHacker inference.

Source: DDIM (Song et al. 2021, Eq. 12 with η = 0) on the ε-prediction parameterisation; the
official pipeline (hustvl/Moebius, after diffusers' inpainting pipeline; docs/model_facts.md,
"Latents and the denoiser input" and "Sampling"): 9-channel input cat[z_t, mask, z_masked], CFG batch [uncond, cond] with the
LCG foreground ids 10..19 as the unconditional branch and background ids 0..9 as the conditional
one, ε = ε_fg + g·(ε_bg − ε_fg); 20 DDIM steps, scaled-linear β, noise offset 0.0357, strength 0.99.
Guidance g defaults to 2.5 (natural) / 2.0 (portrait) (paper Sec. 4.1); g = 1 skips the uncond pass.
The teacher's own rows use PixelHacker's inference instead (``model_sampling``): hustvl/PixelHacker
``infer_pixelhacker.py`` calls its pipeline with num_steps 20, strength 0.999, guidance_scale 4.5,
noise_offset 0.0357, paste=False. (At 20 steps strength 0.999 keeps int(20·0.999) = 19 steps, the same
t = 900 start as 0.99.)

Start (``SampleConfig.start``):
- ``gt_noised`` (the official pipeline): the *ground-truth* latent, hole included, is noised to the
  first kept timestep (t = 900 for 20 steps at strength 0.99): z_start = √ᾱ·z_gt + √(1−ᾱ)·ε. At
  t = 900 √ᾱ ≈ 0.119 against √(1−ᾱ) ≈ 0.993, so the start carries a faint copy of the answer:
  with a model that predicts ε = 0 every DDIM step only rescales, the final latent is z_start/√ᾱ =
  z_gt + 8.35·ε, i.e. all of z_gt survives at an SNR of √(ᾱ/(1−ᾱ)) ≈ 0.12 (tests/diffusion measure
  it). A trained model denoises that noise away and keeps more of the hidden content than a blind
  inpainter could: scores from this start are optimistic for a true inpainting benchmark.
- ``noise`` (our default): pure noise and the whole grid (t = 950 ... 0), as diffusers does at
  strength 1; nothing of the hole's content reaches the model.

Randomness: every image draws, from its own generator and always in this order, the VAE posterior
noise of its masked image, that of its ground truth, the start noise and the noise-offset term, so
that a batch of 4 gives the same images as 4 batches of 1 (``seeding.py``).

Speed (no change to the method): the whole of ``inpaint_batch`` runs under ``torch.inference_mode``
(nothing it returns is ever differentiated), the CFG pair [uncond, cond] is one batched forward, and
two opt-in switches act on the denoiser only (``sampling_denoiser``): ``sample.precision`` (bf16 / fp16
autocast; latents, the DDIM update and the VAE stay fp32) and ``sample.compile`` (``torch.compile``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from moebius.config import SampleConfig
from moebius.diffusion.composite import finish
from moebius.diffusion.latents import decode, denoiser_input, encode, latent_mask, vae_factor
from moebius.diffusion.schedule import (
    NoiseSchedule,
    ddim_timesteps,
    scaled_linear_schedule,
    step_ratio,
    truncate_by_strength,
)
from moebius.diffusion.seeding import image_generators, randn_per_image
from moebius.errors import SamplerError

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]
"""ε-prediction of the noisy latent at integer timestep t: (B,4,h,w), t → (B,4,h,w)."""

# sample.precision → the denoiser's autocast dtype (None: plain fp32)
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------------------------
# DDIM
# ---------------------------------------------------------------------------------------------


def ddim_step(x: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, schedule: NoiseSchedule) -> torch.Tensor:
    """One deterministic DDIM update x_t → x_{t_prev} (η = 0, no clipping of x̂_0)."""
    a_t = schedule.alpha_bar(t)
    a_prev = schedule.alpha_bar(t_prev)
    x0 = (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)  # x̂_0
    return math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps


def ddim_sample(
    eps_fn: EpsFn, x: torch.Tensor, timesteps: list[int], ratio: int, schedule: NoiseSchedule
) -> torch.Tensor:
    """Run DDIM from ``x`` at ``timesteps[0]`` down the grid; t_prev = t − ``ratio`` (< 0 → ᾱ = final)."""
    for t in timesteps:
        x = ddim_step(x, eps_fn(x, t), t, t - ratio, schedule)
    return x


def start_latents(
    start: str, z_gt: torch.Tensor, noise: torch.Tensor, t_start: int, schedule: NoiseSchedule
) -> torch.Tensor:
    """The latent the sampler starts from at ``t_start`` (see the module docstring)."""
    if start == "noise":
        return noise  # DDIM's init_noise_sigma is 1
    if start == "gt_noised":
        a = schedule.alpha_bar(t_start)
        return math.sqrt(a) * z_gt + math.sqrt(1.0 - a) * noise
    raise SamplerError(f"unknown sampler start {start!r}; choose 'noise' or 'gt_noised'")


def sampling_timesteps(sample_cfg: SampleConfig) -> list[int]:
    """The timesteps the model is called at: the whole grid for ``noise``, strength-truncated otherwise."""
    grid = ddim_timesteps(sample_cfg.steps, sample_cfg.num_train_timesteps)
    if sample_cfg.start == "gt_noised":
        return truncate_by_strength(grid, sample_cfg.strength)
    return grid


def model_sampling(sample_cfg: SampleConfig, model: str, domain: str) -> tuple[SampleConfig, float]:
    """``(sampler settings, default guidance)`` of one model's rows on a benchmark of ``domain``.

    ``pixelhacker``: its own inference (``sample.pixelhacker_*``: guidance 4.5 in every domain, strength
    0.999, no paste-back), since the tables' PixelHacker numbers are the PixelHacker paper's. Every
    other model (Moebius and the ablation students): Moebius's, 2.5 natural / 2.0 portrait.
    """
    if domain not in ("natural", "portrait"):
        raise SamplerError(f"unknown benchmark domain {domain!r}; choose 'natural' or 'portrait'")
    if model == "pixelhacker":
        teacher = dataclasses.replace(sample_cfg, strength=sample_cfg.pixelhacker_strength,
                                      paste_back=sample_cfg.pixelhacker_paste_back)
        return teacher, float(sample_cfg.pixelhacker_guidance)
    guidance = sample_cfg.cfg_natural if domain == "natural" else sample_cfg.cfg_portrait
    return sample_cfg, float(guidance)


# ---------------------------------------------------------------------------------------------
# Guidance
# ---------------------------------------------------------------------------------------------


def sampling_denoiser(model: torch.nn.Module, sample_cfg: SampleConfig) -> Callable[..., object]:
    """The denoiser as the sampler calls it: ``model`` itself, unless ``sample.compile`` / ``sample.precision``.

    Speed only, both opt-in. ``compile``: ``torch.compile(model)``; the compiled code is cached by
    torch on the model's forward, so wrapping again for every batch compiles once per process (and
    again per new input shape). ``precision`` bf16 / fp16: the forward under ``torch.autocast`` on the
    model's device; the caller casts ε back to its latents' fp32 (``guided_eps_fn``).
    """
    if sample_cfg.precision not in AUTOCAST_DTYPES:
        raise SamplerError(f"unknown sample.precision {sample_cfg.precision!r}; choose one of {sorted(AUTOCAST_DTYPES)}")
    fn = torch.compile(model) if sample_cfg.compile else model
    dtype = AUTOCAST_DTYPES[sample_cfg.precision]
    if dtype is None:
        return fn
    device_type = next(model.parameters()).device.type

    def autocast_fn(*args: torch.Tensor) -> object:
        with torch.autocast(device_type, dtype=dtype):
            return fn(*args)

    return autocast_fn


def guided_eps_fn(
    model: Callable[..., object], mask_latent: torch.Tensor, z_masked: torch.Tensor, guidance: float
) -> EpsFn:
    """ε(x, t) of the removal model with LCG CFG; the input is ``denoiser_input(x, mask_latent, z_masked)``.

    ε is returned in the latents' dtype (a no-op in fp32; under autocast the guidance sum is then fp32).
    """
    from moebius.models.lcg import (
        lcg_ids,  # the models package owns the token convention
    )

    b = z_masked.shape[0]
    device = z_masked.device
    ids_bg = lcg_ids(b, conditional=True, device=device)  # (B, 10) ids 0..9
    ids_fg = lcg_ids(b, conditional=False, device=device)  # (B, 10) ids 10..19
    skip_uncond = guidance == 1.0

    def eps_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        x_in = denoiser_input(x, mask_latent, z_masked)  # (B, 9, h, w)
        if skip_uncond:  # ε_fg + 1·(ε_bg − ε_fg) = ε_bg: half the compute
            ts = torch.full((b,), t, dtype=torch.long, device=device)
            return model(x_in, ts, ids_bg).sample.to(x.dtype)
        ts = torch.full((2 * b,), t, dtype=torch.long, device=device)
        out = model(torch.cat([x_in, x_in]), ts, torch.cat([ids_fg, ids_bg])).sample.to(x.dtype)  # (2B, 4, h, w)
        eps_fg, eps_bg = out.chunk(2)  # batch is [uncond, cond], as the official code builds it
        return eps_fg + guidance * (eps_bg - eps_fg)

    return eps_fn


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def _check_inputs(
    model: torch.nn.Module, vae: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, seeds: list[int]
) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise SamplerError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
    b, _, h, w = images.shape
    if masks.shape != (b, 1, h, w):
        raise SamplerError(f"masks must be ({b},1,{h},{w}), got {tuple(masks.shape)}")
    if len(seeds) != b:
        raise SamplerError(f"need one seed per image: {len(seeds)} seeds for {b} images")
    if images.min() < -1.0 - 1e-4 or images.max() > 1.0 + 1e-4:
        raise SamplerError("images must lie in [-1, 1]")
    factor = vae_factor(vae)
    if h != w or h % factor:
        raise SamplerError(f"images must be square with a side divisible by the VAE factor {factor}, got {h}x{w}")
    latent_size = getattr(model, "latent_size", None)
    if latent_size is not None and h // factor != latent_size:
        raise SamplerError(
            f"this model runs at {latent_size * factor} px (latent {latent_size}), got {h} px images; resize first"
        )


@torch.inference_mode()
def inpaint_batch(
    model: torch.nn.Module,
    vae: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    seeds: list[int],
    guidance: float,
    sample_cfg: SampleConfig,
) -> torch.Tensor:
    """Inpaint a batch: images (B,3,H,W) in [-1,1], masks (B,1,H,W) 1 = hole → (B,3,H,W) in [-1,1].

    ``seeds[i]`` seeds image i's generator (use ``moebius.seeding.image_seed(run seed, id)``). The decoded
    image meets the input as ``sample_cfg.paste_back`` says (``composite.finish``: ``blurred`` official
    paste-back, ``hard`` composite, ``none``), at this resolution, as the official pipeline does.
    The denoiser runs as ``sampling_denoiser`` says (``sample.precision``, ``sample.compile``).
    """
    _check_inputs(model, vae, images, masks, seeds)
    if not math.isfinite(guidance):
        raise SamplerError(f"guidance must be a finite number, got {guidance}")
    denoiser = sampling_denoiser(model, sample_cfg)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    images = images.to(device=device, dtype=dtype)
    masks = masks.to(device=device, dtype=dtype)
    h = images.shape[-1] // vae_factor(vae)
    shape = (vae.config.latent_channels, h, h)

    gens = image_generators(seeds)
    eps_masked = randn_per_image(gens, shape, device, dtype)
    eps_gt = randn_per_image(gens, shape, device, dtype)
    noise = randn_per_image(gens, shape, device, dtype)
    # Noise offset: a per-image, per-channel constant added to the start noise, the form training
    # uses (official --noise_offset). docs/model_facts.md lists 0.0357 among the inference defaults; how
    # the official pipeline applies it was not visible, so this form is our reading.
    offset = randn_per_image(gens, (shape[0], 1, 1), device, dtype)
    noise = noise + sample_cfg.noise_offset * offset

    hole = (masks > 0.5).to(dtype)
    z_masked = encode(vae, images * (1.0 - hole), eps_masked)  # (B, 4, h, h)
    m = latent_mask(masks, (h, h))  # (B, 1, h, h)

    schedule = scaled_linear_schedule(sample_cfg.beta_start, sample_cfg.beta_end, sample_cfg.num_train_timesteps)
    timesteps = sampling_timesteps(sample_cfg)
    z_gt = encode(vae, images, eps_gt) if sample_cfg.start == "gt_noised" else torch.zeros_like(noise)
    x = start_latents(sample_cfg.start, z_gt, noise, timesteps[0], schedule)
    z0 = ddim_sample(
        guided_eps_fn(denoiser, m, z_masked, float(guidance)),
        x,
        timesteps,
        step_ratio(sample_cfg.steps, sample_cfg.num_train_timesteps),
        schedule,
    )
    out = decode(vae, z0)
    return finish(out, images, masks, sample_cfg.paste_back, float(sample_cfg.paste_blur))
