"""inpaint_benchmark: pairing by id, compositing, resizing, meta.json, resuming."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import moebius.eval.inpaint as inpaint_mod
from moebius.config import BenchmarkConfig, load_config
from moebius.errors import EvalError
from moebius.eval.inpaint import inpaint_benchmark
from moebius.models import build_model, build_vae

IDS = ["b07", "a01", "c3", "007"]  # manifest order is not sorted order


@pytest.fixture
def ours(monkeypatch):
    """The real student and VAE at the tiny preset (8×8 latents, 32 px) stand in for a finished run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is ~10x faster than two contending ones
    torch.manual_seed(0)
    model, vae = build_model("student", "tiny").eval(), build_vae("tiny")
    vae.register_to_config(scaling_factor=0.5)  # not 1, so that a lost scale shows
    loaded = (model, vae.eval(), {"weights_kind": "trained"})
    monkeypatch.setattr(inpaint_mod, "load_ours", lambda run_dir, vae_dir, key: loaded)
    yield
    torch.set_num_threads(threads)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_benchmark(root: Path, size: int, mask_order: list[str]) -> tuple[Path, Path]:
    images_dir, masks_dir = root / "images", root / "masks"
    images_dir.mkdir()
    masks_dir.mkdir()
    rng = np.random.default_rng(0)
    ratios = {}
    for k, i in enumerate(IDS):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(images_dir / f"{i}.png")
        hole = np.zeros((size, size), np.uint8)
        hole[k * size // 8 : k * size // 8 + size // 3, size // 4 : size // 2 + k] = 255  # a different hole per id
        Image.fromarray(hole).save(masks_dir / f"{i}.png")
        ratios[i] = float((hole == 255).mean())
    # Written by hand (not write_manifest, which sorts): manifest order must not be sorted order here.
    pd.DataFrame({"id": IDS, "source": "test", "sha256": [_sha256(images_dir / f"{i}.png") for i in IDS],
                  "width": size, "height": size}).to_csv(images_dir / "manifest.csv", index=False)
    pd.DataFrame({"id": mask_order, "polarity": "255_hole", "hole_ratio": [ratios[i] for i in mask_order]}).to_csv(
        masks_dir / "manifest.csv", index=False)
    return images_dir, masks_dir


def _cfg(size: int = 32, **sample):
    cfg = load_config("config/smoke.yaml")
    bench = BenchmarkConfig(dataset="x", split="test", n_images=4, size=size, preprocess="mat_crop",
                            mask_protocol="p", domain="portrait", finetune="celebahq")
    return dataclasses.replace(cfg, benchmarks={"tiny": bench},
                               sample=dataclasses.replace(cfg.sample, steps=3, batch_size=3, **sample))


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _check_composited(images_dir: Path, masks_dir: Path, out_dir: Path) -> None:
    for i in IDS:
        src, out = _read(images_dir / f"{i}.png"), _read(out_dir / f"{i}.png")
        hole = np.asarray(Image.open(masks_dir / f"{i}.png")) == 255
        assert np.array_equal(out[~hole], src[~hole]), i  # known pixels exactly the input's own
        assert np.abs(out[hole] - src[hole]).mean() > 5, i  # the hole was repainted


def _check_blurred(images_dir: Path, masks_dir: Path, out_dir: Path) -> None:
    """The official paste-back: input beyond the blur's reach, a blend across the edge."""
    from moebius.diffusion import blurred_mask

    for i in IDS:
        src, out = _read(images_dir / f"{i}.png"), _read(out_dir / f"{i}.png")
        hole = np.asarray(Image.open(masks_dir / f"{i}.png")) == 255
        m = blurred_mask(torch.from_numpy(hole).float()[None, None], 3.0)[0, 0].numpy()
        assert np.array_equal(out[m == 0], src[m == 0]), i  # known pixels the blur does not reach
        seam = ~hole & (m > 0.2)
        assert seam.any() and np.abs(out[seam] - src[seam]).mean() > 2, i  # output bled across the edge
        assert np.abs(out[hole] - src[hole]).mean() > 5, i  # the hole was repainted


def test_ours_composited_by_id_with_meta(tmp_path, ours) -> None:
    images_dir, masks_dir = _write_benchmark(tmp_path, 32, mask_order=list(reversed(IDS)))
    out = tmp_path / "out"
    meta = inpaint_benchmark(_cfg(), "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, out)
    _check_blurred(images_dir, masks_dir, out)  # the official Moebius paste-back is the default
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk["ids"] == IDS and on_disk["n_images"] == 4
    assert on_disk["guidance"] == 2.0  # portrait domain default
    assert on_disk["weights_kind"] == "trained" and on_disk["resized"] is None
    assert on_disk["sampler"]["start"] == meta["sampler"]["start"] == "noise"
    assert on_disk["sampler"]["paste_back"] == "blurred" and on_disk["sampler"]["paste_blur"] == 3.0
    hard = tmp_path / "hard"
    inpaint_benchmark(_cfg(paste_back="hard"), "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, hard)
    _check_composited(images_dir, masks_dir, hard)


def test_pixelhacker_rows_use_its_own_inference(tmp_path, ours, monkeypatch) -> None:
    """infer_pixelhacker.py: guidance 4.5, strength 0.999, no paste-back (and no composite after it)."""
    images_dir, masks_dir = _write_benchmark(tmp_path, 32, mask_order=IDS)
    seen = []
    real = inpaint_mod.inpaint_batch

    def spy(model, vae, images, masks, seeds, guidance, sample_cfg):
        seen.append((guidance, sample_cfg))
        return real(model, vae, images, masks, seeds, guidance, sample_cfg)

    monkeypatch.setattr(inpaint_mod, "inpaint_batch", spy)
    out = tmp_path / "ph"
    meta = inpaint_benchmark(_cfg(start="gt_noised"), "pixelhacker", tmp_path, tmp_path, "tiny", images_dir,
                             masks_dir, out)
    assert seen and all(g == 4.5 and c.strength == 0.999 and c.paste_back == "none" for g, c in seen)
    assert meta["guidance"] == 4.5  # not the portrait 2.0 Moebius uses
    assert meta["sampler"] == {"start": "gt_noised", "strength": 0.999, "noise_offset": 0.0357,
                               "paste_back": "none", "paste_blur": 3.0, "precision": "fp32", "compile": False}
    for i in IDS:  # the raw decoded image: the known region is the VAE's, not the input's
        src, got = _read(images_dir / f"{i}.png"), _read(out / f"{i}.png")
        hole = np.asarray(Image.open(masks_dir / f"{i}.png")) == 255
        assert np.abs(got[~hole] - src[~hole]).mean() > 5, i
    seen.clear()
    inpaint_benchmark(_cfg(), "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, tmp_path / "mb")
    assert [(g, c.strength, c.paste_back) for g, c in seen][0] == (2.0, 0.99, "blurred")


def test_start_override_is_recorded_and_checked(tmp_path, ours) -> None:
    images_dir, masks_dir = _write_benchmark(tmp_path, 32, mask_order=IDS)
    meta = inpaint_benchmark(_cfg(), "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir,
                             tmp_path / "g", start="gt_noised")
    assert meta["sampler"]["start"] == "gt_noised"
    with pytest.raises(EvalError, match="other settings"):  # one folder, one start
        inpaint_benchmark(_cfg(), "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, tmp_path / "g")
    with pytest.raises(EvalError, match="unknown sampler start"):
        inpaint_benchmark(_cfg(), "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, tmp_path / "x",
                          start="zeros")
    with pytest.raises(EvalError, match="our models only"):
        inpaint_benchmark(_cfg(), "telea", None, None, "tiny", images_dir, masks_dir, tmp_path / "t",
                          start="noise")


def test_resize_to_model_size_and_back(tmp_path, ours) -> None:
    images_dir, masks_dir = _write_benchmark(tmp_path, 16, mask_order=IDS)
    out = tmp_path / "out"
    cfg = _cfg(16, paste_back="hard")
    cfg = dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, score_size="benchmark"))
    meta = inpaint_benchmark(cfg, "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, out)
    assert meta["resized"] == {"from": 16, "to": 32, "images": "bicubic", "masks": "nearest", "mode": "benchmark",
                               "scored_at": 16}
    assert Image.open(out / "b07.png").size == (16, 16)
    _check_composited(images_dir, masks_dir, out)


def test_score_size_model_keeps_the_model_size_as_the_official_pipeline(tmp_path, ours) -> None:
    from moebius.eval.score_size import MASK_THRESHOLD, lanczos_uint8

    images_dir, masks_dir = _write_benchmark(tmp_path, 16, mask_order=IDS)
    out = tmp_path / "out"
    meta = inpaint_benchmark(_cfg(16, paste_back="hard"), "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, out)
    assert meta["resized"] == {"from": 16, "to": 32, "images": "lanczos", "masks": "lanczos>=128", "mode": "model",
                               "scored_at": 32}
    assert meta["out_size"] == 32
    for i in IDS:
        sample = _read(out / f"{i}.png")
        assert sample.shape == (32, 32, 3), i  # not resized back
        src = np.asarray(Image.open(images_dir / f"{i}.png").convert("RGB"))
        up = lanczos_uint8(src, 32).astype(int)
        mask = Image.open(masks_dir / f"{i}.png").resize((32, 32), Image.Resampling.LANCZOS)
        hole = np.asarray(mask) >= MASK_THRESHOLD
        assert np.array_equal(sample[~hole], up[~hole]), i  # known pixels: the LANCZOS image, exactly
        assert np.abs(sample[hole] - up[hole]).mean() > 5, i  # the hole was repainted


def test_resume_regenerates_only_missing_or_broken(tmp_path, ours) -> None:
    images_dir, masks_dir = _write_benchmark(tmp_path, 32, mask_order=IDS)
    out = tmp_path / "out"
    cfg = _cfg()
    inpaint_benchmark(cfg, "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, out)
    first = {i: _read(out / f"{i}.png") for i in IDS}
    (out / "a01.png").unlink()
    (out / "c3.png").write_bytes(b"not a png")
    meta = inpaint_benchmark(cfg, "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, out)
    assert meta["n_generated_this_run"] == 2
    for i in IDS:  # per-image seeds: a resumed run (other batches) gives the same pixels
        assert np.abs(_read(out / f"{i}.png") - first[i]).max() <= 1, i
    with pytest.raises(EvalError, match="other settings"):
        inpaint_benchmark(cfg, "moebius", tmp_path, tmp_path, "tiny", images_dir, masks_dir, out, guidance=3.0)


def test_missing_mask_id_is_an_error(tmp_path) -> None:
    images_dir, masks_dir = _write_benchmark(tmp_path, 32, mask_order=IDS[:3])
    with pytest.raises(EvalError, match="no mask for image id '007'"):
        inpaint_benchmark(_cfg(), "telea", None, None, "tiny", images_dir, masks_dir, tmp_path / "out")
    assert not (tmp_path / "out" / "meta.json").exists()


def test_baseline_path_and_unknown_names(tmp_path) -> None:
    images_dir, masks_dir = _write_benchmark(tmp_path, 32, mask_order=IDS)
    out = tmp_path / "out"
    meta = inpaint_benchmark(_cfg(), "navier_stokes", None, None, "tiny", images_dir, masks_dir, out)
    assert meta["weights_kind"] == "official" and meta["model"] == "navier_stokes"
    _check_composited(images_dir, masks_dir, out)
    with pytest.raises(EvalError, match="did you mean 'tiny'"):
        inpaint_benchmark(_cfg(), "telea", None, None, "tinny", images_dir, masks_dir, out)
    with pytest.raises(EvalError, match="needs a run folder"):
        inpaint_benchmark(_cfg(), "moebius", None, None, "tiny", images_dir, masks_dir, tmp_path / "o2")
