"""Moebius student, PixelHacker teacher, Table 2 variants and the VAE (paper Sec. 3.1-3.2, Tab. 2).

Public API (importing this package does not import diffusers; ``build_vae`` does, on first call):

- ``build_model(name, preset)`` -> ``RemovalModel``; ``MODEL_NAMES``; ``model_spec(name, preset)``
- ``build_vae(preset)`` -> ``diffusers.AutoencoderKL``
- ``load_weights`` / ``save_weights`` / ``load_state_dict_file`` (``checkpoint``)
- ``lcg_ids`` / ``cfg_ids`` (``lcg``); ``EXPERIMENTS`` (``variants``); ``PRESETS`` (``presets``)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moebius.errors import (
    CheckpointError,
    ModelConfigError,
    ModelError,
    ModelInputError,
    UnknownNameError,
)
from moebius.models.checkpoint import load_state_dict_file, load_weights, save_weights
from moebius.models.lcg import cfg_ids, lcg_ids
from moebius.models.presets import PRESETS, Preset, get_preset
from moebius.models.registry import MODEL_NAMES, build_model, model_spec
from moebius.models.removal import RemovalModel, RemovalOutput
from moebius.models.variants import EXPERIMENTS, Experiment, get_experiment

if TYPE_CHECKING:
    from diffusers import AutoencoderKL


def build_vae(preset: str) -> "AutoencoderKL":
    """``moebius.models.vae.build_vae``, imported on first use (it pulls in diffusers)."""
    from moebius.models.vae import build_vae as _build_vae

    return _build_vae(preset)


__all__ = [
    "EXPERIMENTS",
    "MODEL_NAMES",
    "PRESETS",
    "CheckpointError",
    "Experiment",
    "ModelConfigError",
    "ModelError",
    "ModelInputError",
    "Preset",
    "RemovalModel",
    "RemovalOutput",
    "UnknownNameError",
    "build_model",
    "build_vae",
    "cfg_ids",
    "get_experiment",
    "get_preset",
    "lcg_ids",
    "load_state_dict_file",
    "load_weights",
    "model_spec",
    "save_weights",
]
