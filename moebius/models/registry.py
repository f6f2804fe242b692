"""``build_model``: every denoiser of the paper by name and preset (student, teacher, exp1..exp15)."""

from __future__ import annotations

from moebius.errors import UnknownNameError
from moebius.models.presets import did_you_mean, get_preset
from moebius.models.removal import RemovalModel
from moebius.models.student import student_spec
from moebius.models.teacher import teacher_spec
from moebius.models.unet import UNetSpec
from moebius.models.variants import EXPERIMENTS, get_experiment, variant_spec

MODEL_NAMES: tuple[str, ...] = ("student", "teacher", *(f"exp{i}" for i in sorted(EXPERIMENTS)))
"""Every name ``build_model`` accepts (feed it to the CLI's ``choices``)."""


def model_spec(name: str, preset: str = "paper") -> UNetSpec:
    """The architecture spec of ``name`` at ``preset`` sizes, without building anything."""
    p = get_preset(preset)
    if name == "student":
        return student_spec(p)
    if name == "teacher":
        return teacher_spec(p)
    if name in MODEL_NAMES:
        return variant_spec(get_experiment(name), p)
    raise UnknownNameError(
        f"unknown model {name!r}{did_you_mean(name, MODEL_NAMES)}; choose student, teacher or exp1..exp15"
    )


def build_model(name: str, preset: str = "paper") -> RemovalModel:
    """Build ``name`` ("student", "teacher", "exp1".."exp15") at ``preset`` ("paper" | "smoke") sizes.

    Weights are freshly initialised; load official or trained weights with ``checkpoint.load_weights``.
    Build under ``torch.device("meta")`` to count parameters without allocating them.
    """
    return RemovalModel(model_spec(name, preset), name=name, preset=preset)
