"""``build_model``: every denoiser of the paper by name and preset (student, teacher, exp1..exp15)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial

from moebius.models.presets import Preset, get_preset
from moebius.models.removal import RemovalModel
from moebius.models.student import student_spec
from moebius.models.teacher import teacher_spec
from moebius.models.unet import UNetSpec
from moebius.models.variants import EXPERIMENTS, variant_spec
from moebius.registry import Registry

# name -> spec builder (Preset -> UNetSpec)
SPECS: Registry[Callable[[Preset], UNetSpec]] = Registry(
    "model",
    {
        "student": student_spec,
        "teacher": teacher_spec,
        **{f"exp{i}": partial(variant_spec, EXPERIMENTS[i]) for i in sorted(EXPERIMENTS)},
    },
)
MODEL_NAMES: tuple[str, ...] = SPECS.names()
"""Every name ``build_model`` accepts (feed it to the CLI's ``choices``)."""


def model_spec(name: str, preset: str = "paper") -> UNetSpec:
    """The architecture spec of ``name`` at ``preset`` sizes, without building anything."""
    return SPECS.get(name)(get_preset(preset))


def build_model(name: str, preset: str = "paper") -> RemovalModel:
    """Build ``name`` ("student", "teacher", "exp1".."exp15") at ``preset`` ("paper" | "smoke" | "tiny") sizes.

    Weights are freshly initialised; load official or trained weights with ``checkpoint.load_weights``.
    Build under ``torch.device("meta")`` to count parameters without allocating them.
    """
    return RemovalModel(model_spec(name, preset), name=name, preset=preset)


@lru_cache(maxsize=None)
def parameter_count(name: str, preset: str = "paper") -> int:
    """Parameters of ``build_model(name, preset)``, counted on the meta device (nothing allocated)."""
    import torch

    with torch.device("meta"):
        model = build_model(name, preset)
    return sum(p.numel() for p in model.parameters())
