"""Tests of ``moebius.eval.metrics``: FID / LPIPS with stand-in weights, pairing, bins, bootstrap, records."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from moebius.data.manifest import row_for_png, write_manifest
from moebius.errors import EvalError
from moebius.eval import metrics as M

N_IMAGES = 3  # Inception costs ~1 s per image at 299 px (the real weights' size): keep the sets tiny
SIZE = 32
RATIOS = [0.42, 0.47, 0.93]  # bins 0.4-0.5 (x2, reported) and 0.9-1.0 (x1, below the 2-image minimum)


def _write_set(root: Path, seed: int, noise: int = 0, base_seed: int | None = None) -> Path:
    """N_IMAGES RGB PNGs; with ``noise``, a perturbed copy of the set drawn from ``base_seed``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base_rng = np.random.default_rng(base_seed if base_seed is not None else seed)
    for i in range(N_IMAGES):
        img = base_rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.int64)
        if noise:
            img = np.clip(img + rng.integers(-noise, noise + 1, img.shape), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(root / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("metrics")
    real = _write_set(root / "real", seed=1)
    write_manifest(real, [row_for_png(p.stem, "x", p.read_bytes(), SIZE, SIZE) for p in sorted(real.glob("*.png"))])
    fake = _write_set(root / "fake", seed=2, noise=60, base_seed=1)
    (fake / "meta.json").write_text(json.dumps({"weights_kind": "trained", "model": "moebius", "benchmark": "b"}))
    masks = root / "masks"
    masks.mkdir()
    pd.DataFrame({"id": [f"img{i:02d}" for i in range(N_IMAGES)], "seed": 0, "hole_ratio": RATIOS}).to_csv(
        masks / "manifest.csv", index=False)
    return {"root": root, "real": real, "fake": fake, "masks": masks}


@pytest.fixture(scope="module")
def features(sets) -> dict[str, torch.Tensor]:
    with pytest.MonkeyPatch.context() as mp:  # module scope: isolate from any real hub cache here too
        mp.setenv("TORCH_HOME", str(sets["root"] / "torch_home"))
        extractor, kind = M.build_inception(allow_standin=True, weights_dir=sets["root"] / "no_weights",
                                            standin_seed=0, device="cpu")
    assert kind == "standin"
    real = M.inception_features(sorted(sets["real"].glob("*.png")), extractor)
    fake = M.inception_features(sorted(sets["fake"].glob("*.png")), extractor)
    return {"real": real, "fake": fake}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may download: an empty torch hub and weights dir, and a download that fails loudly."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("MOEBIUS_WEIGHTS_DIR", str(tmp_path / "weights"))

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", refuse)


# ---------------------------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------------------------


# torch-fidelity's eigvals route is the less accurate one when covariances are rank-deficient (~1e-8).
@pytest.mark.parametrize("n1,n2,dim", [(10, 10, 16), (40, 40, 16), (12, 30, 16)])
def test_fid_formula_equals_torch_fidelity(n1, n2, dim):
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )

    gen = torch.Generator().manual_seed(n1 + n2)
    a = torch.randn(n1, dim, generator=gen, dtype=torch.float64)
    b = 0.5 * torch.randn(n2, dim, generator=gen, dtype=torch.float64) + 0.3
    theirs = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b), False)
    assert M.fid_from_features(a, b) == pytest.approx(theirs[KEY_METRIC_FID], rel=1e-6, abs=1e-9)


def test_fid_of_a_set_against_itself_is_zero_and_of_different_sets_positive(features):
    assert abs(M.fid_from_features(features["real"], features["real"])) < 1e-3
    assert M.fid_from_features(features["real"], features["fake"]) > 1e-3
    # the stand-in must not collapse features to ~0 (PyTorch's default init does: ENVIRONMENT.md)
    assert features["real"].std() > 1e-3


def test_fid_needs_two_images_and_equal_dims():
    with pytest.raises(EvalError, match="at least 2"):
        M.fid_from_features(torch.zeros(1, 8), torch.zeros(5, 8))
    with pytest.raises(EvalError, match="same D"):
        M.fid_from_features(torch.zeros(3, 8), torch.zeros(3, 9))


def test_standin_inception_is_deterministic_across_processes_and_seeded(sets, features, tmp_path):
    out = tmp_path / "feats.pt"
    paths = [str(p) for p in sorted(sets["real"].glob("*.png"))[:2]]
    code = (
        "import sys, torch\n"
        "from moebius.eval import metrics as M\n"
        "f = [M.inception_features(sys.argv[3:], M.build_inception(True, sys.argv[1], s, 'cpu')[0]) for s in (0, 1)]\n"
        "torch.save(f, sys.argv[2])\n"
    )
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "none"), str(out), *paths], check=True, cwd=repo,
                   env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "TORCH_HOME": str(tmp_path / "th")})
    seed0, seed1 = torch.load(out)
    # same seed, another process: the same weights, so the same features up to the float summation
    # order (which depends on the thread count and the batch composition)
    assert torch.allclose(seed0, features["real"][:2], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(seed1, seed0)  # the seed matters


def test_missing_inception_without_standin_fails_fast_naming_the_fix():
    from moebius.weights import MissingWeightError

    with pytest.raises(MissingWeightError, match="inception"):
        M.build_inception(allow_standin=False)


def test_official_inception_file_in_torch_hub_cache_is_used_without_download(sets, features, tmp_path):
    # A file of the official name (here: the stand-in's weights) in $TORCH_HOME/hub/checkpoints is
    # picked up, read with weights_only=True, and labelled official.
    standin, _ = M.build_inception(True, tmp_path / "none", 0, "cpu")
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(standin.state_dict(), hub / M.INCEPTION_FILE)
    official, kind = M.build_inception(False, tmp_path / "none", device="cpu")
    assert kind == "official"
    # real weights see 299 px as torch-fidelity's own; only the stand-in takes the small input
    assert official.INPUT_IMAGE_SIZE == 299 and standin.INPUT_IMAGE_SIZE == M.STANDIN_INPUT_SIZE < 299
    one = sorted(sets["real"].glob("*.png"))[:1]
    standin = copy.deepcopy(standin)  # the process's stand-in is shared (M._STANDIN_NETS): change a copy
    standin.INPUT_IMAGE_SIZE = 299
    assert torch.equal(M.inception_features(one, official), M.inception_features(one, standin))


def test_standin_networks_are_built_once_per_process_and_files_every_time(tmp_path):
    """A scoring suite asks once per benchmark: the stand-ins come from memory, a weights file is re-read."""
    first, _ = M.build_inception(True, tmp_path / "none", 0, "cpu")
    assert M.build_inception(True, tmp_path / "none", 0, "cpu")[0] is first
    other = M.build_inception(True, tmp_path / "none", 1, "cpu")[0]  # another seed: another network
    assert other is not first and not torch.equal(next(other.parameters()), next(first.parameters()))
    lp, kind = M.build_lpips("alex", True, tmp_path / "none", 0, "cpu")
    assert kind == "standin" and M.build_lpips("alex", True, tmp_path / "none", 0, "cpu")[0] is lp
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(first.state_dict(), hub / M.INCEPTION_FILE)
    a, kind = M.build_inception(False, tmp_path / "none", device="cpu")
    assert kind == "official" and M.build_inception(False, tmp_path / "none", device="cpu")[0] is not a
    torch.save(other.state_dict(), hub / M.INCEPTION_FILE)  # the file replaced: the next build reads it
    b, _ = M.build_inception(False, tmp_path / "none", device="cpu")
    assert torch.equal(next(b.parameters()), next(other.parameters()))


def test_registered_torch_fidelity_extractor_is_ours():
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    cls = M.inception_class()
    assert FEATURE_EXTRACTORS_REGISTRY[M.TORCH_FIDELITY_NAME] is cls


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


def _pairs(sets, a="fake", b="real"):
    return list(zip(sorted(sets[a].glob("*.png")), sorted(sets[b].glob("*.png"))))


def test_lpips_identical_images_is_zero_and_different_positive(sets):
    same = M.compute_lpips(_pairs(sets, "real", "real"), allow_standin=True, device="cpu")
    assert same.weights_kind == "standin"
    assert np.all(same.per_image == 0)
    diff = M.compute_lpips(_pairs(sets), allow_standin=True, device="cpu")
    assert np.all(diff.per_image > 0) and diff.value == pytest.approx(diff.per_image.mean())


def test_lpips_ranges_are_the_same_metric_and_bad_range_is_an_error(sets):
    mat = M.compute_lpips(_pairs(sets), "alex", "minus_one_one", allow_standin=True, device="cpu")
    migan = M.compute_lpips(_pairs(sets), "alex", "zero_one", allow_standin=True, device="cpu")
    np.testing.assert_allclose(mat.per_image, migan.per_image, rtol=1e-5)
    with pytest.raises(EvalError, match="lpips_range"):
        M.compute_lpips(_pairs(sets), "alex", "zero_255", allow_standin=True)


def test_lpips_official_backbone_is_loaded_into_lpips_slices(sets):
    import torchvision

    features = torchvision.models.alexnet(weights=None).features
    for p in features.parameters():
        torch.nn.init.constant_(p, 0.01)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, hub / "alexnet-owt-7be5be79.pth")
    model, kind = M.build_lpips("alex", allow_standin=False, device="cpu")
    assert kind == "official"
    assert all(torch.all(p == 0.01) for p in model.net.parameters())
    assert not any(torch.all(p == 0.01) for p in model.lins.parameters())  # heads stay the shipped ones


def test_lpips_without_backbone_and_without_standin_fails():
    from moebius.weights import MissingWeightError

    with pytest.raises(MissingWeightError, match="alexnet"):
        M.build_lpips("alex", allow_standin=False)


# ---------------------------------------------------------------------------------------------
# Pairing, bins, bootstrap
# ---------------------------------------------------------------------------------------------


def test_pairing_names_the_mismatched_ids(sets, tmp_path):
    fake = _write_set(tmp_path / "fake", seed=3)
    (fake / "img01.png").rename(fake / "extra_zz.png")
    with pytest.raises(EvalError) as err:
        M.pair_by_stem(fake, sets["real"])
    assert "extra_zz" in str(err.value) and "img01" in str(err.value)
    (fake / "extra_zz.png").unlink()
    with pytest.raises(EvalError, match="only in ground truth .*img01"):
        M.pair_by_stem(fake, sets["real"])


def test_pairs_of_different_sizes_are_an_error(sets, tmp_path):
    fake = _write_set(tmp_path / "fake", seed=3)
    Image.new("RGB", (SIZE + 1, SIZE)).save(fake / "img02.png")
    with pytest.raises(EvalError, match="img02"):
        M.compute_lpips(list(zip(sorted(fake.glob("*.png")), sorted(sets["real"].glob("*.png")))),
                        allow_standin=True)


def test_hole_bin_labels():
    assert M.hole_bin_labels([0.0, 0.45, 0.4, 0.5, 0.999, 1.0]) == [
        "0.0-0.1", "0.4-0.5", "0.4-0.5", "0.5-0.6", "0.9-1.0", "0.9-1.0"]
    with pytest.raises(EvalError):
        M.hole_bin_labels([1.2])


def test_bootstrap_is_seeded_and_brackets_the_statistic(features):
    scores = np.random.default_rng(0).random(50)
    ci = M.bootstrap_mean_ci(scores, 300, seed=7)
    assert ci == M.bootstrap_mean_ci(scores, 300, seed=7)
    assert ci != M.bootstrap_mean_ci(scores, 300, seed=8)
    assert ci[0] < scores.mean() < ci[1]
    assert M.bootstrap_mean_ci(scores, 0, seed=7) is None
    assert M.fid_interval(features["real"][:3], features["fake"][:3], 50, seed=0) is None  # < 2 per half


def _gaussian_sets(g: np.random.Generator, n: int, dim: int = 8, shift: float = 0.3):
    real = torch.from_numpy(g.normal(size=(n, dim)))
    fake = torch.from_numpy(g.normal(loc=shift, size=(n, dim)))
    return real, fake


def test_fid_interval_is_centred_where_the_with_replacement_bootstrap_is_not():
    """Resampling with replacement duplicates ~37 % of the images and inflates every resampled FID."""
    real, fake = _gaussian_sets(np.random.default_rng(0), 60)
    point = M.fid_from_features(real, fake)
    idx = np.random.default_rng(1).integers(0, 60, size=(300, 60))
    with_replacement = np.array([M.fid_from_features(real[r], fake[r]) for r in idx])
    assert np.mean(with_replacement > point) > 0.8  # the old percentile interval sat mostly above FID
    lo, hi = M.fid_interval(real, fake, 300, seed=2)
    assert lo < point < hi
    assert abs((lo + hi) / 2 - point) < 0.25 * (hi - lo)  # roughly centred on the estimate


def test_fid_interval_width_matches_the_spread_over_independent_draws():
    """Calibration: the half-sampling interval's implied s.d. ≈ the s.d. of FID over fresh data sets."""
    g = np.random.default_rng(3)
    fids = [M.fid_from_features(*_gaussian_sets(g, 100)) for _ in range(150)]
    real, fake = _gaussian_sets(g, 100)
    lo, hi = M.fid_interval(real, fake, 300, seed=4)
    implied_sd = (hi - lo) / (2 * 1.96)
    assert 0.6 < implied_sd / np.std(fids) < 1.6


# ---------------------------------------------------------------------------------------------
# evaluate_samples: the records
# ---------------------------------------------------------------------------------------------


def test_evaluate_samples_records(sets, features):
    from moebius.config import load_config

    cfg = load_config("config/smoke.yaml")
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, bootstrap=50))
    records = M.evaluate_samples(cfg, sets["fake"], sets["real"], sets["masks"], model="moebius", benchmark="b",
                                 settings={"cfg_scale": 2.5}, device="cpu")
    by = {(r["metric"], r["settings"].get("hole_bin")): r for r in records}
    assert set(by) == {("fid", None), ("lpips", None), ("fid_bin", "0.4-0.5"), ("lpips_bin", "0.4-0.5")}
    fid = by[("fid", None)]
    # a fresh extractor built from the same seed reproduces the number exactly (re-running is stable)
    # same features up to float summation order (thread count, batch composition)
    assert fid["value"] == pytest.approx(M.fid_from_features(features["real"], features["fake"]), rel=1e-6)
    assert fid["n_images"] == N_IMAGES and by[("fid_bin", "0.4-0.5")]["n_images"] == 2
    assert fid["ci_low"] is None and fid["ci_high"] is None  # 3 images: too few to half-sample
    assert all(r["weights_kind"] == "standin" for r in records)  # stand-in extractors override "trained"
    assert all(r["settings"]["cfg_scale"] == 2.5 and r["benchmark"] == "b" for r in records)
    lp_bin = by[("lpips_bin", "0.4-0.5")]["value"]
    lp = by[("lpips", None)]
    assert lp["n_images"] == N_IMAGES and lp["ci_low"] <= lp["ci_high"]
    per_image = M.compute_lpips(_pairs(sets), allow_standin=True, device="cpu").per_image
    assert lp["value"] == pytest.approx(per_image.mean())
    assert lp_bin == pytest.approx(per_image[:2].mean())  # img00 and img01 form the 0.4-0.5 bin
    # smoke's eval.min_fid_images is 8: the 2-image bin gets no FID, only the marker (its LPIPS stays)
    fid_bin = by[("fid_bin", "0.4-0.5")]
    assert fid_bin["value"] is None and fid_bin["withheld"] == "too few" and fid_bin["ci_low"] is None
    assert fid_bin["settings"]["min_fid_images"] == 8
    from moebius.records import shown_value, validate_record

    validate_record(fid_bin)
    assert shown_value(fid_bin) == "too few" and shown_value(fid) == fid["value"]


def test_per_bin_fid_from_enough_images_and_sampler_settings(sets, features, tmp_path):
    """At or above eval.min_fid_images a bin has its FID; the record names the sampler form of its samples."""
    import shutil

    from moebius.config import load_config

    cfg = load_config("config/smoke.yaml")
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, bootstrap=0, min_fid_images=2))
    fake = tmp_path / "fake"
    shutil.copytree(sets["fake"], fake)
    (fake / "meta.json").write_text(json.dumps({
        "weights_kind": "trained", "guidance": 4.5,
        "sampler": {"start": "gt_noised", "strength": 0.999, "paste_back": "none", "paste_blur": 3.0}}))
    records = M.evaluate_samples(cfg, fake, sets["real"], sets["masks"], model="pixelhacker", benchmark="b",
                                 settings={"experiment": "main"}, device="cpu")
    fid_bin = next(r for r in records if r["metric"] == "fid_bin")
    rows = torch.tensor([0, 1])
    expected = M.fid_from_features(features["real"][rows], features["fake"][rows])
    assert fid_bin["value"] == pytest.approx(expected, rel=1e-6) and "withheld" not in fid_bin
    for r in records:  # the samples' own form, not the config's (sample.start noise, paste_back blurred)
        assert r["settings"]["sampler_start"] == "gt_noised" and r["settings"]["paste_back"] == "none"
        assert r["settings"]["variant"] == "start=gt_noised" and r["settings"]["guidance"] == 4.5


def test_sampler_settings_from_meta():
    from moebius.config import load_config

    cfg = load_config("config/smoke.yaml")
    assert M.sampler_settings(cfg, {"sampler": {"start": "noise", "paste_back": "blurred"}, "guidance": 2.5}) == {
        "sampler_start": "noise", "paste_back": "blurred", "guidance": 2.5}  # the primary start: no variant
    assert M.sampler_settings(cfg, {"sampler": {"start": "pipeline"}, "guidance": 3.5}) == {}  # a baseline
    assert M.sampler_settings(cfg, {}) == {}
    bf16 = {"start": "noise", "paste_back": "blurred", "precision": "bf16", "compile": True}
    assert M.sampler_settings(cfg, {"sampler": bf16}) == {  # the opt-in speed paths are named in the record
        "sampler_start": "noise", "paste_back": "blurred", "sample_precision": "bf16", "sample_compile": True}


def test_evaluate_samples_requires_meta_and_mask_rows(sets, tmp_path):
    from moebius.config import load_config

    cfg = load_config("config/smoke.yaml")
    fake = _write_set(tmp_path / "fake", seed=3)
    with pytest.raises(EvalError, match="meta.json"):
        M.evaluate_samples(cfg, fake, sets["real"], sets["masks"], model="m", benchmark="b")
    (fake / "meta.json").write_text(json.dumps({"weights_kind": "trained"}))
    masks = tmp_path / "masks"
    masks.mkdir()
    pd.DataFrame({"id": ["img00"], "hole_ratio": [0.1]}).to_csv(masks / "manifest.csv", index=False)
    with pytest.raises(EvalError, match="no mask"):
        M.evaluate_samples(cfg, fake, sets["real"], masks, model="m", benchmark="b")


@pytest.mark.slow
def test_compute_fid_equals_torch_fidelity_calculate_metrics(sets):
    """The whole torch-fidelity pipeline (its loader, its FID) with our registered stand-in extractor."""
    import torch_fidelity

    ours = M.compute_fid(sorted(sets["real"].glob("*.png")), sorted(sets["fake"].glob("*.png")),
                         allow_standin=True, device="cpu")
    weights, _ = M.inception_weights_file(True)
    theirs = torch_fidelity.calculate_metrics(
        input1=str(sets["real"]), input2=str(sets["fake"]), fid=True, feature_extractor=M.TORCH_FIDELITY_NAME,
        feature_extractor_weights_path=weights, cuda=False, save_cpu_ram=True, cache=False, verbose=False)
    assert ours.value == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4, abs=1e-6)


def test_real_feature_cache_gives_the_same_fid_and_is_reused(tmp_path):
    from PIL import Image

    from moebius.eval.metrics import compute_fid

    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    real, fake = paths[:3], paths[3:]
    plain = compute_fid(real, fake, allow_standin=True, batch_size=3)
    cached = compute_fid(real, fake, allow_standin=True, batch_size=3, real_cache_dir=tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache").iterdir()
    again = compute_fid(real, fake, allow_standin=True, batch_size=3, real_cache_dir=tmp_path / "cache")
    assert plain.value == pytest.approx(cached.value, abs=1e-9) == pytest.approx(again.value, abs=1e-9)
    # a changed real image is a different key, not a stale hit
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(real[0])
    compute_fid(real, fake, allow_standin=True, batch_size=3, real_cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2 and cache_file.exists()


def test_standin_features_of_another_input_size_are_not_a_cache_hit(tmp_path, monkeypatch):
    # a smoke tree scored before the stand-in's input shrank holds 299-px real features: never reused
    from PIL import Image

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8)).save(paths[-1])
    small = M.compute_fid(paths[:2], paths[2:], allow_standin=True, real_cache_dir=tmp_path / "cache")
    monkeypatch.setattr(M, "STANDIN_INPUT_SIZE", 299)
    large = M.compute_fid(paths[:2], paths[2:], allow_standin=True, real_cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert not torch.equal(small.real_features, large.real_features)
