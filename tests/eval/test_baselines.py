"""Baseline registry, the OpenCV fillers, and the tiny FLUX Fill / SD3 inpaint pipelines."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from moebius.config import load_config
from moebius.diffusion.composite import composite
from moebius.errors import EvalError, UnknownNameError
from moebius.eval.baselines import (
    can_run,
    BASELINES,
    get_baseline,
    run_baseline,
    weights_kind,
)


def _box_mask(b: int, size: int) -> torch.Tensor:
    masks = torch.zeros(b, 1, size, size)
    masks[:, :, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    return masks


def test_registry_covers_eval_models_and_hints(smoke_cfg) -> None:
    names = list(BASELINES)
    assert set(smoke_cfg.eval.models) <= set(names)
    with pytest.raises(UnknownNameError, match="unknown baseline 'telia' \\(did you mean 'telea'\\?\\)"):
        get_baseline("telia")
    assert get_baseline("flux_fill").steps == 50 and get_baseline("sd35_inpaint").steps == 28


def test_reported_only_methods_cannot_run(smoke_cfg, monkeypatch) -> None:
    # A method of the paper's tables with no loader here (as DDNM or HD-Painter): numbers from the paper.
    from moebius.eval import baselines
    from moebius.eval.baselines import BaselineSpec
    from moebius.registry import Registry

    ddnm = BaselineSpec("ddnm", "DDNM", "diffusion", "reported", "reported in the paper", None, None,
                        note="no checkpoint loader here: numbers from the paper's tables")
    monkeypatch.setattr(baselines, "BASELINES", Registry("baseline", {**dict(baselines.BASELINES.items()), "ddnm": ddnm}))
    ok, why = can_run("ddnm", smoke_cfg)
    assert not ok and "paper" in why
    with pytest.raises(EvalError, match="cannot run"):
        run_baseline(smoke_cfg, "ddnm", torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), [0])


def test_full_scale_without_weights_says_where_to_put_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MOEBIUS_WEIGHTS_DIR", str(tmp_path))
    cfg = load_config("config/smoke.yaml")
    cfg = dataclasses.replace(cfg, scale="full", weights=dataclasses.replace(cfg.weights, allow_standin=False))
    ok, why = can_run("flux_fill", cfg)
    assert not ok and str(tmp_path) in why and "FLUX.1-Fill-dev" in why
    assert weights_kind(cfg, "telea") == "official"  # classical: the method itself, no weights


@pytest.mark.parametrize("name", ["telea", "navier_stokes"])
def test_classical_constant_image_stays_constant(smoke_cfg, name: str) -> None:
    images = torch.full((2, 3, 32, 32), 0.2)
    out = run_baseline(smoke_cfg, name, images, _box_mask(2, 32), [0, 1])
    # Telea's gradient term drifts by up to two 8-bit levels; a broken fill would be far off.
    assert (out - 0.2).abs().max() <= 2.5 / 127.5


@pytest.mark.parametrize("name", ["telea", "navier_stokes"])
def test_classical_fill_is_plausible_and_keeps_known(smoke_cfg, name: str) -> None:
    images = torch.full((1, 3, 32, 32), -0.8)
    images[..., 16:] = 0.8  # left dark, right bright; the hole straddles the edge
    masks = _box_mask(1, 32)
    out = composite(run_baseline(smoke_cfg, name, images, masks, [0]), images, masks)
    hole = masks.expand_as(images) > 0.5
    assert torch.equal(out[~hole], images[~hole])
    filled = out[hole]
    tol = 2.5 / 127.5  # two 8-bit levels of Telea drift
    assert filled.min() >= -0.8 - tol and filled.max() <= 0.8 + tol  # no values outside the boundary's
    assert out[0, :, 10, 9].mean() < 0 < out[0, :, 10, 22].mean()  # each side continues its own colour


@pytest.mark.parametrize("name", ["flux_fill", "sd35_inpaint"])
def test_tiny_diffusers_pipelines_run(smoke_cfg, name: str) -> None:
    cfg = dataclasses.replace(smoke_cfg, eval=dataclasses.replace(smoke_cfg.eval, flux_steps=1, sd35_steps=1))
    assert weights_kind(cfg, name) == "standin"
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    t0 = time.perf_counter()
    out = run_baseline(cfg, name, images, _box_mask(2, 32), [5, 6])
    elapsed = time.perf_counter() - t0
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    again = run_baseline(cfg, name, images[1:], _box_mask(1, 32), [6])
    torch.testing.assert_close(again, out[1:], atol=1e-4, rtol=0)  # per-image generators
    assert elapsed < 60


def test_ablation_runs_are_sampled_like_moebius():
    from moebius.eval.baselines import get_baseline

    for name in ("exp1", "exp15", "loss_c", "loss_cftp"):
        spec = get_baseline(name)
        assert spec.family == "ours" and spec.name == name and spec.steps == get_baseline("moebius").steps
    with pytest.raises(UnknownNameError, match="unknown baseline .exp16."):
        get_baseline("exp16")
