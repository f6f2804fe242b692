"""The 'bg' augmentation of E-LatentLPIPS: its filter, its resampling geometry, its draw statistics,
and that both inputs always get the same transform."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from moebius.errors import TrainError
from moebius.train.elatentlpips import standin_elatentlpips
from moebius.train.latent_augment import (
    SYM6,
    LatentAugment,
    Transforms,
    draw_transforms,
    inverse_matrix,
    warp,
)

H = W = 16


def _only(batch: int = 2, **over: torch.Tensor) -> Transforms:
    """Transforms that are the identity except the named ones."""
    z = torch.zeros(batch, dtype=torch.float64)
    o = torch.ones(batch, dtype=torch.float64)
    z2 = torch.zeros(batch, 2, dtype=torch.float64)
    base = dict(xflip=z, rot90=z, xint=z2, scale=o, rot_pre=z, aniso=o, rot_post=z, xfrac=z2)
    base.update(over)
    return Transforms(**base)


def _warp(x: torch.Tensor, tr: Transforms) -> torch.Tensor:
    return warp(x, inverse_matrix(tr, H, W))


def test_sym6_table_is_an_orthonormal_wavelet_with_six_vanishing_moments():
    h = torch.tensor(SYM6, dtype=torch.float64)
    assert float(h.sum()) == pytest.approx(math.sqrt(2), abs=1e-12)
    for shift in range(0, 6):  # Σ h[k] h[k+2m] = δ_m: a typo in any coefficient breaks this
        assert float((h[: 12 - 2 * shift] * h[2 * shift :]).sum()) == pytest.approx(float(shift == 0), abs=1e-12)
    k = torch.arange(12, dtype=torch.float64)
    for power in range(6):  # the high-pass (-1)^k h[k] annihilates polynomials of degree < 6
        scale = float((k**power * h.abs()).sum())
        assert float(((-1) ** k * k**power * h).sum()) == pytest.approx(0.0, abs=1e-11 * scale)


def test_identity_and_whole_pixel_shifts_resample_exactly():
    # The 2x wavelet up/down path reconstructs the input; whole-pixel shifts reveal ADA's reflect padding.
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(_warp(x, _only()), x, atol=1e-9)
    right2 = _only(xint=torch.tensor([[2 / W, 0.0]] * 2, dtype=torch.float64))
    assert torch.allclose(_warp(x, right2), F.pad(x, [2, 0, 0, 0], mode="reflect")[..., :W], atol=1e-9)
    up3 = _only(xint=torch.tensor([[0.0, -3 / H]] * 2, dtype=torch.float64))
    assert torch.allclose(_warp(x, up3), F.pad(x, [0, 0, 0, 3], mode="reflect")[..., 3:, :], atol=1e-9)
    full_turn = _only(rot_pre=torch.full((2,), 2 * math.pi, dtype=torch.float64))
    assert torch.allclose(_warp(x, full_turn), x, atol=1e-9)


def test_flip_and_quarter_turn_follow_the_image_on_smooth_latents():
    # ADA resamples flips and turns through the same (slightly asymmetric) filter: exact only up to it.
    coarse = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False)
    one = torch.ones(1, dtype=torch.float64)
    flipped = _warp(x, _only(1, xflip=one))
    turned = _warp(x, _only(1, rot90=one))
    rms = x.pow(2).mean().sqrt()
    assert float((flipped - x.flip(-1)).pow(2).mean().sqrt()) < 0.05 * rms
    assert float((turned - torch.rot90(x, 1, (-2, -1))).pow(2).mean().sqrt()) < 0.05 * rms
    assert float((flipped - x).pow(2).mean().sqrt()) > 0.5 * rms  # it did move


def test_both_inputs_get_the_same_transform_and_p0_is_the_identity():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 4, H, W, generator=g)
    aug = LatentAugment(p=1.0)
    a1, a2 = aug(a, a.clone(), torch.Generator().manual_seed(5))
    assert torch.equal(a1, a2)
    b1, b2 = aug(a, 2 * a, torch.Generator().manual_seed(5))  # linear: same draw -> same map
    assert torch.allclose(b2, 2 * b1, atol=1e-5)
    assert torch.allclose(b1, a1, atol=1e-6)  # the generator alone fixes the transforms
    c1, _ = aug(a, a, torch.Generator().manual_seed(6))
    assert not torch.allclose(c1, a1, atol=1e-3)  # another step, other transforms
    assert not torch.allclose(a1, a, atol=1e-3)  # at p = 1 every sample moves
    i1, i2 = LatentAugment(p=0.0)(a, 2 * a, torch.Generator().manual_seed(5))
    assert torch.equal(i1, a) and torch.equal(i2, 2 * a)


def test_a_latent_stays_at_distance_zero_from_itself_under_the_ensemble():
    net = standin_elatentlpips()
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 4, H, W, generator=g)
    w = torch.randn(3, 4, H, W, generator=g)
    same = net(z, z, normalize=True, ensembling=True, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(same, torch.zeros(3), atol=1e-6)
    plain = net(z, w)
    ens = net(z, w, ensembling=True, generator=torch.Generator().manual_seed(0))
    assert bool((ens > 0).all()) and not torch.allclose(ens, plain, rtol=1e-3)


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_transform_statistics_follow_ada_at_probability_p(p):
    n = 8000
    tr = draw_transforms(n, torch.Generator().manual_seed(11), p)
    tol = 0.025  # > 4 binomial standard deviations at n = 8000
    assert float(tr.xflip.mean()) == pytest.approx(p / 2, abs=tol)  # gated with p, then a fair coin
    for k in range(1, 4):
        assert float((tr.rot90 == k).float().mean()) == pytest.approx(p / 4, abs=tol)
    assert float((tr.xint != 0).any(dim=1).float().mean()) == pytest.approx(p, abs=tol)
    assert float(tr.xint.abs().max()) <= 0.125
    rotated = (tr.rot_pre != 0) | (tr.rot_post != 0)
    assert float(rotated.float().mean()) == pytest.approx(p, abs=tol)  # P(pre or post) = p
    assert float(tr.rot_pre.abs().max()) <= math.pi
    scaled = tr.scale != 1
    assert float(scaled.float().mean()) == pytest.approx(p, abs=tol)
    assert float(torch.log2(tr.scale[scaled]).std()) == pytest.approx(0.2, rel=0.05)
    assert float(torch.log2(tr.aniso[tr.aniso != 1]).std()) == pytest.approx(0.2, rel=0.05)
    moved = (tr.xfrac != 0).any(dim=1)
    assert float(tr.xfrac[moved].std()) == pytest.approx(0.125, rel=0.05)


def test_gradients_reach_both_inputs_through_the_augmentation():
    a = torch.randn(2, 4, H, W, requires_grad=True)
    b = torch.randn(2, 4, H, W, requires_grad=True)
    oa, ob = LatentAugment()(a, b, torch.Generator().manual_seed(0))
    (oa * ob).sum().backward()
    assert float(a.grad.abs().sum()) > 0 and float(b.grad.abs().sum()) > 0


@pytest.mark.hostile("augmentation probability 1.5, or inputs of two shapes", "TrainError naming the problem")
def test_bad_probability_or_mismatched_inputs_are_errors():
    with pytest.raises(TrainError, match="probability"):
        LatentAugment(p=1.5)
    with pytest.raises(TrainError, match="one shape"):
        LatentAugment()(torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 9), torch.Generator())
