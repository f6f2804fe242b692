"""Fixtures for the training tests: tiny images on disk and a config that trains the real models.

Every run builds the real classes (``moebius.models.RemovalModel``, diffusers' ``AutoencoderKL``) at
the ``tiny`` preset (32 px images, 8×8 latents, widths 8-32), so a training step takes a fraction of
a second; the ``smoke`` preset is exercised by the slow tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import moebius.train.runs as runs
from moebius.config import config_from_dict
from moebius.data.checksums import file_sha256
from moebius.data.manifest import ManifestRow, write_manifest
from moebius.models.presets import get_preset

PRESET = "tiny"
IMAGE = get_preset(PRESET).image_size  # px: the training images are made at the preset's size
# The tiny images are stored under a registered smoke dataset's name, so that the tiny config passes
# the CLI's check_config (registered datasets, at least one benchmark) as the API runs' config does.
TOY = "smoke_natural"


def write_dataset(root: Path, name: str, split: str, n: int, seed: int) -> None:
    """n smooth random RGB images with a manifest, as moebius.data lays them out."""
    folder = root / "datasets" / name / split
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((IMAGE, IMAGE), Image.BILINEAR)
        path = folder / f"{i:04d}.png"
        img.save(path)
        rows.append(ManifestRow(f"{i:04d}", "synthetic", file_sha256(path), IMAGE, IMAGE))
    write_manifest(folder, rows)


def tiny_train(**over) -> dict:
    base = dict(
        steps=6, batch_size=2, global_batch=2, lr=1e-3, lr_milestones=[3], lr_gamma=0.5, optimizer="muon",
        precision="fp32", checkpoint_every=3, log_every=1, datasets=[TOY], num_workers=0, weight_decay=0.0,
    )
    base.update(over)
    return base


def tiny_cfg_dict(data: Path) -> dict:
    return {
        "scale": "smoke",
        "seed": 3,
        "paths": {"data": str(data)},
        "data": {"source": "smoke", "datasets": [TOY]},
        "model": {"preset": PRESET, "vae_source": "train", "teacher_source": "train", "student_source": "train"},
        "masks": {"train_protocols": ["mat_large_512"]},
        # the config checks need one benchmark; the training tests never score it
        "benchmarks": {
            "toy_test": {"dataset": TOY, "split": "test", "n_images": 4, "size": 64, "preprocess": "mat_crop",
                         "mask_protocol": "mat_large_512", "domain": "natural", "finetune": "places2"},
        },
        "vae_train": tiny_train(optimizer="adamw"),
        "teacher_train": tiny_train(),
        "distill": {"train": tiny_train(), "perceptual": "standin"},
        "ablation": {"benchmark": "toy_test"},
        "eval": {"cfg_sweep": {"toy_test": [1.0, 2.5]}},
        "finetune": {
            "train": tiny_train(lr_milestones=[]),
            "targets": {"places2": {"datasets": [TOY], "steps": 3, "global_batch": 2}},
        },
    }


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data")
    write_dataset(data, TOY, "train", 8, seed=1)
    write_dataset(data, TOY, "test", 4, seed=2)
    return data


@pytest.fixture(scope="session")
def tiny_cfg(data_root: Path):
    """A config whose data live in a temp dir and whose runs are a few steps of batch 2."""
    torch.set_num_threads(1)  # bit-exact comparisons need a fixed thread count
    return config_from_dict(tiny_cfg_dict(data_root))


@pytest.fixture(scope="session")
def vae_dir(tiny_cfg, tmp_path_factory) -> Path:
    return runs.train_vae(tiny_cfg, tmp_path_factory.mktemp("runs") / "vae")


@pytest.fixture(scope="session")
def teacher_dir(tiny_cfg, vae_dir, tmp_path_factory) -> Path:
    return runs.train_teacher(tiny_cfg, vae_dir, tmp_path_factory.mktemp("runs") / "teacher")


def write_cfg(path: Path, cfg_dict: dict) -> Path:
    """A config dict as the YAML file the CLI's --config reads."""
    path.write_text(yaml.safe_dump(cfg_dict), encoding="utf-8")
    return path


def one_error_line(stderr: str) -> str:
    """The single ``moebius: error:`` line, which must be the last line of stderr, with no traceback."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("moebius: error:")]
    assert errors == [lines[-1]] and "Traceback" not in stderr, stderr
    return lines[-1]
