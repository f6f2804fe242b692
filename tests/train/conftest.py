"""Fixtures for the training tests: tiny images on disk, a tiny VAE and tiny stand-in denoisers.

The stand-in denoiser has the interface of ``moebius.models.RemovalModel`` (embedding_layer,
diff_model, block_outputs, coarse_feature_index, final/coarse layer names, latent_size) at a size
that trains in milliseconds; the real smoke presets are exercised by the slow tests.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

import moebius.train.runs as runs
from moebius.config import config_from_dict
from moebius.data.manifest import ManifestRow, write_manifest
from moebius.data.checksums import file_sha256

IMAGE = 16  # px; the tiny VAE has factor 2 -> 8x8 latents
# The tiny images are stored under a registered smoke dataset's name, so that the tiny config passes
# the CLI's check_config (registered datasets, at least one benchmark) as the API runs' config does.
TOY = "smoke_natural"
REAL_BUILDERS = {"build_denoiser": runs.build_denoiser, "build_autoencoder": runs.build_autoencoder}


@dataclass
class TinyOutput:
    sample: torch.Tensor
    block_outputs: list[torch.Tensor] = field(default_factory=list)


class TinyUNet(nn.Module):
    """conv_in -> down (coarse feature, 4x4) -> up -> conv_out, with time and token conditioning."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(9, width, 3, padding=1)
        self.time = nn.Linear(1, width)
        self.ctx = nn.Linear(8, width)
        self.down = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(width, width, 3, padding=1)
        self.up = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.norm = nn.GroupNorm(4, width)
        self.conv_out = nn.Conv2d(width, 4, 3, padding=1)

    def forward(self, x, t, ctx):
        h = self.conv_in(x)
        cond = self.time(t.float()[:, None] / 1000.0) + self.ctx(ctx.mean(1))  # (B, W)
        h = torch.nn.functional.silu(h + cond[:, :, None, None])
        d = torch.nn.functional.silu(self.down(h))  # (B, W, 4, 4)
        m = self.mid(d)  # coarse feature
        u = self.up(m) + h
        return self.conv_out(torch.nn.functional.silu(self.norm(u))), [d, m, u]


class TinyRemoval(nn.Module):
    """Same interface as RemovalModel; ``teacher`` is wider, both share the feature width."""

    def __init__(self, name: str, preset: str) -> None:
        super().__init__()
        self.name, self.preset = name, preset
        self.embedding_layer = nn.Embedding(20, 8)
        self.diff_model = TinyUNet(16)
        self.latent_size = IMAGE // 2
        self.coarse_feature_index = 1
        self.final_layer_param = "diff_model.conv_out.weight"
        self.coarse_layer_param = "diff_model.mid.weight"
        self.checkpointing = False  # what the run asked for (no BatchNorm here: nothing to recompute)

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.checkpointing = enabled

    def forward(self, noisy_latents, timesteps, input_ids):
        sample, blocks = self.diff_model(noisy_latents, timesteps, self.embedding_layer(input_ids))
        return TinyOutput(sample, blocks)


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=IMAGE,
    )


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


@pytest.fixture(scope="session", autouse=True)
def tiny_models():
    """Route the trainer's model builders to the tiny stand-ins for every test in this folder."""
    mp = pytest.MonkeyPatch()
    mp.setattr(runs, "build_denoiser", lambda name, preset: TinyRemoval(name, preset))
    mp.setattr(runs, "build_autoencoder", lambda preset: tiny_vae())
    yield
    mp.undo()


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
        "benchmarks": {
            "places2_test": {"dataset": TOY, "split": "test", "n_images": 4, "size": IMAGE, "preprocess": "mat_crop",
                             "mask_protocol": "places2_test", "domain": "natural", "finetune": "places2"},
        },
        "eval": {"cfg_sweep": {"places2_test": [2.0]}},
        "model": {"preset": "smoke", "vae_source": "train", "teacher_source": "train", "student_source": "train"},
        "masks": {"train_protocols": ["mat_large_512"]},
        # the config checks need one benchmark; the training tests never score it
        "benchmarks": {
            "toy_test": {"dataset": "smoke_natural", "split": "test", "n_images": 4, "size": 64, "preprocess": "mat_crop",
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


@pytest.fixture
def moebius_cli(monkeypatch, capsys):
    """Run ``moebius ARGS`` in this process (so the tiny stand-ins train); returns (exit code, stderr)."""
    from moebius.cli import main

    def run(*args: str) -> tuple[int, str]:
        logger = logging.getLogger("moebius")
        before = list(logger.handlers)
        monkeypatch.setattr(sys, "argv", ["moebius", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            for h in logger.handlers[:]:
                if h not in before:  # main() binds a handler to this test's captured stderr
                    logger.removeHandler(h)
        return code, capsys.readouterr().err

    return run


def one_error_line(stderr: str) -> str:
    """The single ``moebius: error:`` line, which must be the last line of stderr, with no traceback."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("moebius: error:")]
    assert errors == [lines[-1]] and "Traceback" not in stderr, stderr
    return lines[-1]
