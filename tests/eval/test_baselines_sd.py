"""The paper's "SD" row: SD 1.5 inpainting through diffusers' from_pretrained, with a stand-in folder."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from moebius.config import BenchmarkConfig, load_config
from moebius.eval import baselines
from moebius.eval.baseline_diffusers import write_tiny_sd15_inpaint
from moebius.eval.baselines import provenance, run_baseline, weights_kind
from moebius.registry import Registry


def _batch(b: int, size: int):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(b, 3, size, size, generator=g) * 2 - 1
    masks = torch.zeros(b, 1, size, size)
    masks[:, :, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    return images, masks


def test_standin_folder_has_the_published_layout(tmp_path) -> None:
    folder = write_tiny_sd15_inpaint(tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    for part, cls in (("unet", "UNet2DConditionModel"), ("vae", "AutoencoderKL"),
                      ("text_encoder", "CLIPTextModel"), ("tokenizer", "CLIPTokenizer")):
        assert index[part][1] == cls and (folder / part).is_dir()
    assert json.loads((folder / "unet" / "config.json").read_text())["in_channels"] == 9  # latent+mask+masked
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["beta_schedule"] == "scaled_linear" and scheduler["beta_end"] == pytest.approx(0.012)


def _replace_baseline(monkeypatch, spec) -> None:
    """A copy of the (append-only) registry with ``spec`` in place of its namesake, for one test."""
    monkeypatch.setattr(baselines, "BASELINES", Registry("baseline", {**dict(baselines.BASELINES.items()), spec.name: spec}))


def test_smoke_scale_runs_the_standin_per_image(monkeypatch) -> None:
    cfg = load_config("config/smoke.yaml")
    _replace_baseline(monkeypatch, dataclasses.replace(baselines.BASELINES["sd15_inpaint"], steps=3))  # speed only
    images, masks = _batch(2, 64)
    out = run_baseline(cfg, "sd15_inpaint", images, masks, [5, 6], benchmark="places2_test")
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    again = run_baseline(cfg, "sd15_inpaint", images[1:], masks[1:], [6], benchmark="places2_test")
    torch.testing.assert_close(again, out[1:], atol=1e-4, rtol=0)  # one generator per image
    assert weights_kind(cfg, "sd15_inpaint", "places2_test") == "standin"
    assert provenance(cfg, "sd15_inpaint", "places2_test")["class"] == "StableDiffusionInpaintPipeline"


def test_full_scale_loads_the_folder_at_the_registry_path(tmp_path, monkeypatch) -> None:
    # The published folder's place in the weights directory, filled with the stand-in: the full-scale
    # loader takes it as the official pipeline (from_pretrained of a local folder, no network).
    shutil.move(write_tiny_sd15_inpaint(tmp_path / "tmp"), tmp_path / "w" / "pipelines" / "stable-diffusion-inpainting")
    monkeypatch.setenv("MOEBIUS_WEIGHTS_DIR", str(tmp_path / "w"))
    _replace_baseline(monkeypatch, dataclasses.replace(baselines.BASELINES["sd15_inpaint"], steps=2))  # speed only
    cfg = load_config("config/full.yaml")
    # A 64-px benchmark on a 512-px protocol: SD's native 512 scales to 64 (no resize here).
    bench = BenchmarkConfig(dataset="places365", split="test", n_images=1, size=64, preprocess="mat_crop",
                            mask_protocol="mat_large_512", domain="natural", finetune="places2")
    cfg = dataclasses.replace(cfg, benchmarks={"places2_test": bench})
    assert weights_kind(cfg, "sd15_inpaint", "places2_test") == "official"
    images, masks = _batch(1, 64)
    out = run_baseline(cfg, "sd15_inpaint", images, masks, [1], benchmark="places2_test")
    assert out.shape == images.shape
    info = provenance(cfg, "sd15_inpaint", "places2_test")
    assert info["kind"] == "official" and info["folder"].endswith("stable-diffusion-inpainting")
