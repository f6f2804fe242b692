"""The latent autoencoder (paper Sec. 3.1: SDXL VAE, f8, 4 latent channels; ``smoke``: a tiny f4 one).

``paper`` builds diffusers' ``AutoencoderKL`` from PixelHacker's ``vae/config.json`` (shipped here as
``configs/sdxl_vae_f8d4.json``; official weights are loaded separately). ``smoke`` builds the same
class with three blocks (downsampling factor 4: 64×64 images -> 16×16 latents) and small widths;
``tiny`` the same at widths of 8 (unit tests).
Callers must read the latent scale from ``vae.config.scaling_factor``, never a literal.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from diffusers import AutoencoderKL

from moebius.registry import Registry


def sdxl_vae_config() -> dict[str, Any]:
    """The SDXL f8d4 VAE config (PixelHacker's), without diffusers' private ``_*`` entries."""
    text = resources.files("moebius.models").joinpath("configs/sdxl_vae_f8d4.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def smoke_vae_config() -> dict[str, Any]:
    """A tiny f4 VAE: three encoder/decoder blocks (two downsamplings), 4 latent channels."""
    config = sdxl_vae_config()
    config.update(
        block_out_channels=[32, 64, 64],
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=64,
        # DEVIATION (paper §3.1, SDXL's 0.13025): the stand-in VAE is trained from scratch, so its
        # latent scale is not SDXL's; 1.0 until the training step measures and stores a better one.
        scaling_factor=1.0,
    )
    return config


def tiny_vae_config() -> dict[str, Any]:
    """The unit tests' VAE: the smoke topology (f4, three blocks) at widths of 8 (32×32 images -> 8×8)."""
    config = smoke_vae_config()
    config.update(block_out_channels=[8, 8, 8], norm_num_groups=4, sample_size=32)
    return config


_VAE_CONFIGS = Registry("VAE preset", {"paper": sdxl_vae_config, "smoke": smoke_vae_config, "tiny": tiny_vae_config})
VAE_PRESETS = _VAE_CONFIGS.names()


def vae_config(preset: str) -> dict[str, Any]:
    """The AutoencoderKL config of ``preset`` ("paper" | "smoke" | "tiny")."""
    return _VAE_CONFIGS.get(preset)()


def build_vae(preset: str) -> AutoencoderKL:
    """A freshly initialised ``AutoencoderKL`` for ``preset``."""
    return AutoencoderKL(**vae_config(preset))

