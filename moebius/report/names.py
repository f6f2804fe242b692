"""Model names: the one vocabulary of model keys, and the names other layers give the same models.

A model has three names, and this module is the one place where they meet:

* its **key** (``moebius``, ``pixelhacker``, ``exp9``, ``telea``, ...): what the config's
  ``eval.models``, the CLI's ``--model``, the workflow, the result records and the tables use;
* its **build name** (``student``, ``teacher``, ``exp9``): what ``moebius.models.build_model``, the
  training runs (``run.json`` ``model``) and the official checkpoints (``--kind``) call the
  architecture; ``BUILD_NAMES`` maps key -> build name;
* its **display name** (``Moebius``, ``PixelHacker``, ``Exp 9``): how the paper's tables print it
  (``MODEL_NAMES``). The reference CSVs (``results/reference/``, transcribed from the paper) name
  methods that way, so pairing a reproduced number with a reported one happens on the display name.

Imports nothing heavy: the config checks and Snakemake's parse read it.
"""

from __future__ import annotations

from moebius.registry import Registry

# Tab. 2 rows ①..⑮: the keys of moebius.models.variants.EXPERIMENTS (torch-free copy; tests/test_registry.py).
TABLE2_KEYS = tuple(f"exp{i}" for i in range(1, 16))

# Key -> build name, for the models built here from an architecture of moebius.models (ours, the
# teacher and the Table 2 variants). The student is "moebius" to the evaluation and "student" to the
# builder, the teacher "pixelhacker" and "teacher"; on-disk names and record fields keep both as they are.
BUILD_NAMES: Registry[str] = Registry("model with an architecture here", {
    "moebius": "student",
    "pixelhacker": "teacher",
    **{key: key for key in TABLE2_KEYS},
})


# Ours and the teacher: the two diffusion models with official checkpoints (hf:hustvl/Moebius,
# hf:hustvl/PixelHacker) and per-benchmark fine-tuning.
OURS = ("moebius", "pixelhacker")
# What `moebius train official --kind` installs: the VAE, and ours by build name.
OFFICIAL_KINDS = ("vae", *(BUILD_NAMES[key] for key in OURS))


def build_name(key: str) -> str:
    """The ``build_model`` name of model key ``key`` (``moebius`` -> ``student``)."""
    return BUILD_NAMES.get(key)


def key_of_build(name: str) -> str:
    """The model key of build name ``name`` (``teacher`` -> ``pixelhacker``)."""
    keys = {build: key for key, build in BUILD_NAMES.items()}
    return Registry("architecture", keys).get(name)


# Models we run whose name appears in the paper, plus our own extra baselines (no reported numbers).
MODEL_NAMES: Registry[str] = Registry("model key", {
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
    **{key: f"Exp {key.removeprefix('exp')}" for key in TABLE2_KEYS},  # Tab. 2 rows ①..⑮
    # Tab. 5 rows are cumulative: each adds one loss to the previous row.
    "loss_c": "C_KD",
    "loss_cf": "C_KD + F_KD",
    "loss_cft": "C_KD + F_KD + task",
    "loss_cftp": "C_KD + F_KD + task + perceptual",
})

# Tab. 5 reference rows, in the paper's order, belong to these keys.
LOSS_ABLATION_KEYS = ("loss_c", "loss_cf", "loss_cft", "loss_cftp")

# Classical baselines we add; they need a family/group in Tab. 3/4 although the paper has no row.
OURS_ONLY = {"telea", "navier_stokes"}

# A record's ``settings.experiment``: which tables it fills (moebius.report.tables). The CLI's
# ``evaluate --experiment`` offers those scored from samples; "efficiency" records come from ``profile``.
EXPERIMENTS: Registry[str] = Registry("experiment", {
    "main": "Tables 1, 3 and 4: every model on the in-domain benchmarks",
    "cfg_sweep": "Table 6: Moebius at several guidance scales",
    "ablation_arch": "Table 2: the architecture variants exp1..exp15",
    "ablation_loss": "Table 5: the distillation loss combinations",
    "ood": "Table 7: the out-of-domain benchmarks",
    "efficiency": "Table 1 cost columns, Table 2 cost columns and efficiency.csv (moebius profile)",
})
SCORED_EXPERIMENTS = tuple(e for e in EXPERIMENTS.names() if e != "efficiency")  # `moebius evaluate`
SUITE_EXPERIMENTS = ("main", "ood")  # `moebius sample-suite` / `score-suite`: every benchmark of one model in one process

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
    return MODEL_NAMES.get(model)


def model_key(name: str) -> str:
    """The model key of a display name, or '' for methods we do not run (reported only)."""
    for key, display in MODEL_NAMES.items():
        if display == name:
            return key
    return ""
