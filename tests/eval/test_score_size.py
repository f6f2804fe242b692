"""sample.score_size: benchmarks smaller than the model, fed and scored as the official pipeline (or resized back)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image
from test_inpaint import IDS, _cfg, _write_benchmark, ours  # noqa: F401 (ours: pytest fixture)

from moebius.data.preprocess import load_image
from moebius.errors import ChecksumError, EvalError
from moebius.eval.inpaint import inpaint_benchmark, read_image
from moebius.eval.score_size import (
    lanczos_images,
    lanczos_masks,
    lanczos_uint8,
    resize_plan,
    score_truth,
    scoring_truth,
)


def test_resize_plan_forms() -> None:
    assert resize_plan("model", 512, 512) is None and resize_plan("benchmark", 64, 64) is None
    model, back = resize_plan("model", 256, 512), resize_plan("benchmark", 256, 512)
    assert (model["mode"], model["scored_at"], model["images"]) == ("model", 512, "lanczos")
    assert (back["mode"], back["scored_at"], back["images"], back["masks"]) == ("benchmark", 256, "bicubic", "nearest")
    with pytest.raises(EvalError, match="score_size"):
        resize_plan("native", 256, 512)


def test_lanczos_of_the_read_tensor_is_lanczos_of_the_file(tmp_path) -> None:
    """The model's input and the scoring truth are built from the same uint8 pixels, so they agree exactly."""
    images_dir, _ = _write_benchmark(tmp_path, 16, mask_order=IDS)
    batch = torch.stack([read_image(images_dir / f"{i}.png", 16) for i in IDS])
    up = lanczos_images(batch, 32)
    assert up.shape == (4, 3, 32, 32)
    for k, i in enumerate(IDS):
        expected = lanczos_uint8(load_image(images_dir / f"{i}.png"), 32)
        got = ((up[k].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(expected, np.asarray(Image.fromarray(load_image(images_dir / f"{IDS[-1]}.png"))
                                                   .resize((32, 32), Image.Resampling.BICUBIC)))


def test_lanczos_masks_are_binary_and_keep_thin_strokes() -> None:
    hole = torch.zeros(1, 1, 16, 16)
    hole[0, 0, :, 7] = 1  # a one-pixel stroke
    up = lanczos_masks(hole, 32)
    assert set(up.unique().tolist()) == {0.0, 1.0}
    assert up[0, 0, :, 14:16].all() and up.sum() == 2 * 32  # the stroke, two pixels wide, nothing else


def test_score_truth_is_shared_and_verified(tmp_path) -> None:
    images_dir, _ = _write_benchmark(tmp_path, 16, mask_order=IDS)
    truth = score_truth(images_dir, 32, tmp_path / "cache")
    for i in IDS:
        np.testing.assert_array_equal(load_image(truth / f"{i}.png"), lanczos_uint8(load_image(images_dir / f"{i}.png"), 32))
    stamp = os.stat(truth / "manifest.csv").st_mtime_ns
    assert score_truth(images_dir, 32, tmp_path / "cache") == truth  # reused, not rebuilt
    assert os.stat(truth / "manifest.csv").st_mtime_ns == stamp


@pytest.mark.hostile(
    "a ground-truth image of the shared LANCZOS-512 scoring cache replaced after it was built",
    "ChecksumError naming the file; nothing is scored against it",
)
def test_score_truth_refuses_a_damaged_cache(tmp_path) -> None:
    images_dir, _ = _write_benchmark(tmp_path, 16, mask_order=IDS)
    truth = score_truth(images_dir, 32, tmp_path / "cache")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(truth / f"{IDS[0]}.png")
    with pytest.raises(ChecksumError, match=IDS[0]):
        score_truth(images_dir, 32, tmp_path / "cache")


@pytest.mark.hostile(
    "a sample folder whose meta.json carries a 'resized' entry that is not a resize plan",
    "EvalError naming the entry, before any image is scored",
)
def test_scoring_truth_refuses_a_malformed_plan(tmp_path) -> None:
    assert scoring_truth({"size": 64}, tmp_path, tmp_path / "c") == (tmp_path, {"score_size": "native", "scored_at": 64})
    with pytest.raises(EvalError, match="resize plan"):
        scoring_truth({"resized": "512"}, tmp_path, tmp_path / "c")


def test_evaluate_scores_model_size_samples_against_the_lanczos_truth(tmp_path, ours, monkeypatch) -> None:  # noqa: F811
    from moebius.eval.metrics import evaluate_samples

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("MOEBIUS_WEIGHTS_DIR", str(tmp_path / "weights"))
    images_dir, masks_dir = _write_benchmark(tmp_path, 16, mask_order=IDS)
    cfg = _cfg(16)  # sample.score_size: model (the default); the tiny model runs at 32
    cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, results=str(tmp_path / "results")),
                              eval=dataclasses.replace(cfg.eval, bootstrap=0))
    out = tmp_path / "out"
    inpaint_benchmark(cfg, "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, out)
    records = evaluate_samples(cfg, out, images_dir, masks_dir, model="moebius", benchmark="tiny", device="cpu")
    fid = next(r for r in records if r["metric"] == "fid")
    assert fid["settings"]["score_size"] == "model" and fid["settings"]["scored_at"] == 32
    assert fid["n_images"] == 4
    (truth,) = (tmp_path / "results" / "cache" / "score_truth").glob("*_lanczos32_pillow*")
    assert {p.stem for p in truth.glob("*.png")} == set(IDS)
    # the benchmark form, and samples made at the benchmark's size, score against the benchmark itself
    back = {"resized": resize_plan("benchmark", 16, 32)}
    assert scoring_truth(back, images_dir, tmp_path / "c") == (images_dir, {"score_size": "benchmark", "scored_at": 16})
