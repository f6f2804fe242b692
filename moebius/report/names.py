"""Display names: model keys of the records ↔ method names of the paper's tables.

The reference CSVs (``results/reference/``, transcribed from the paper) name methods the way the paper
prints them; records use short keys. Pairing a reproduced number with a reported one happens on the
display name, so this mapping is the one place where the two vocabularies meet.
"""

from __future__ import annotations

import difflib

from moebius.errors import ReportError

# Models we run whose name appears in the paper, plus our own extra baselines (no reported numbers).
MODEL_NAMES: dict[str, str] = {
    "moebius": "Moebius",
    "pixelhacker": "PixelHacker",
    "flux_fill": "FLUX.1-Fill-Dev",
    "sd35_inpaint": "SD3.5 Large-Inpainting",
    "telea": "OpenCV Telea",  # ours only: a classical floor, not in the paper
    "navier_stokes": "OpenCV Navier–Stokes",  # ours only
    "lama": "LaMa",
    "mat": "MAT",
    "migan": "MI-GAN",
    "comodgan": "CoModGAN",
    "sd15_inpaint": "SD",  # the paper's "SD" [32] row: SD 1.5 inpainting (moebius.eval.baselines)
    **{f"exp{i}": f"Exp {i}" for i in range(1, 16)},  # Tab. 2 rows ①..⑮
    # Tab. 5 rows are cumulative: each adds one loss to the previous row.
    "loss_c": "C_KD",
    "loss_cf": "C_KD + F_KD",
    "loss_cft": "C_KD + F_KD + task",
    "loss_cftp": "C_KD + F_KD + task + perceptual",
}

# Tab. 5 reference rows, in the paper's order, belong to these keys.
LOSS_ABLATION_KEYS = ("loss_c", "loss_cf", "loss_cft", "loss_cftp")

# Classical baselines we add; they need a family/group in Tab. 3/4 although the paper has no row.
OURS_ONLY = {"telea", "navier_stokes"}

BENCHMARK_NAMES: dict[str, str] = {
    "places2_test": "Places2 (Test)",
    "places2_large": "Places2 (Large)",
    "places2_small": "Places2 (Small)",
    "places2_256": "Places2 (256)",
    "celebahq512": "CelebA-HQ (512)",
    "ffhq256": "FFHQ (256)",
    "lvis": "LVIS (OOD natural)",
    "deepfakeface": "DeepFakeFace (OOD portrait)",
    "efficiency": "efficiency",
}


def display_name(model: str) -> str:
    """The paper's name for a model key; an unknown key is an error (a typo must not create a row)."""
    try:
        return MODEL_NAMES[model]
    except KeyError:
        close = difflib.get_close_matches(model, MODEL_NAMES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ReportError(f"unknown model key {model!r} in records{hint}") from None


def model_key(name: str) -> str:
    """The model key of a display name, or '' for methods we do not run (reported only)."""
    for key, display in MODEL_NAMES.items():
        if display == name:
            return key
    return ""
