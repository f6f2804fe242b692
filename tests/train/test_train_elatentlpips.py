"""E-LatentLPIPS: the official state-dict layout loads strict; the stand-in behaves like a distance."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from moebius.diffusion.schedule import scaled_linear_schedule
from moebius.errors import TrainError
from moebius.train import distill
from moebius.train.elatentlpips import (
    SDXL_LATENT_SCALE,
    ELatentLPIPS,
    build_perceptual_net,
    load_elatentlpips,
    standin_elatentlpips,
    unit_normalise,
)
from moebius.train.losses import PerceptualLoss

MANIFEST = Path(__file__).parent / "manifests" / "elatentlpips_sdxl_state_dict.tsv"  # measured from the official code


def _manifest() -> dict[str, tuple[tuple[int, ...], str]]:
    rows = MANIFEST.read_text().splitlines()[1:]
    out = {}
    for line in rows:
        key, shape, dtype, _ = line.split("\t")
        out[key] = (() if shape == "scalar" else tuple(int(s) for s in shape.split("x")), dtype)
    return out


def test_state_dict_matches_official_manifest_and_loads_strict(tmp_path):
    ref = _manifest()
    net = ELatentLPIPS()
    ours = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}
    assert ours == ref  # same keys (lin* and lins.* both), shapes and dtypes
    # a file built from the manifest alone (as the official .pth is) loads through the strict loader
    fake = {k: (torch.zeros(s, dtype=torch.int64) if d == "int64" else torch.rand(s)) for k, (s, d) in ref.items()}
    for i in range(5):  # the official file stores each head twice, as the same tensor
        fake[f"lins.{i}.model.1.weight"] = fake[f"lin{i}.model.1.weight"]
    torch.save(fake, tmp_path / "sdxl_latest_vgg16_tuned.pth")
    loaded = load_elatentlpips(tmp_path / "sdxl_latest_vgg16_tuned.pth")
    assert torch.equal(loaded.lin3.model[1].weight, fake["lin3.model.1.weight"])
    assert loaded.lins[3] is loaded.lin3


def test_a_wrong_file_is_a_clear_error(tmp_path):
    torch.save({"net.slice1.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(TrainError, match="not an E-LatentLPIPS"):
        load_elatentlpips(tmp_path / "bad.pth")


def test_standin_is_deterministic_and_a_distance():
    a, b = standin_elatentlpips(), standin_elatentlpips()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(3, 4, 16, 16, generator=g), torch.randn(3, 4, 16, 16, generator=g)
    d_same = a(z0, z0)
    d_near = a(z0, z0 + 0.05 * z1)
    d_far = a(z0, z1)
    assert d_same.shape == (3,)
    assert torch.allclose(d_same, torch.zeros(3), atol=1e-6)
    assert bool((d_far > d_near).all()) and bool((d_near > 0).all())


def test_gradient_flows_to_the_input_but_not_the_network():
    net, kind = build_perceptual_net("standin", None)
    assert kind == "standin"
    z = torch.randn(2, 4, 16, 16, requires_grad=True)
    net(z, torch.zeros_like(z)).sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training  # BatchNorm stays on its calibrated statistics


def test_unknown_kind_is_an_error():
    with pytest.raises(TrainError, match="unknown perceptual"):
        build_perceptual_net("lpips", None)


def _pair(seed: int = 0, shape: tuple[int, ...] = (3, 4, 16, 16)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_normalize_scales_the_latents_once_more_l1_term_included():
    net = standin_elatentlpips()
    z0, z1 = _pair()
    official = net(z0, z1, normalize=True)  # augmentation off
    assert torch.allclose(official, net(SDXL_LATENT_SCALE * z0, SDXL_LATENT_SCALE * z1), rtol=1e-5, atol=1e-7)
    assert not torch.allclose(official, net(z0, z1), rtol=1e-2)
    for lin in net.lins:  # heads off: what is left is the L1 term, on the doubly scaled latents
        lin.model[1].weight.zero_()
    l1 = (SDXL_LATENT_SCALE * (z0 - z1)).abs().mean(dim=(1, 2, 3))
    assert torch.allclose(net(z0, z1, normalize=True), l1, rtol=1e-6)


def test_feature_normalisation_puts_the_epsilon_inside_the_root():
    x = torch.tensor([3e-5, 4e-5, 0.0]).view(1, 3, 1, 1)  # ‖x‖² = 2.5e-9, below the eps of 1e-8
    expected = torch.tensor([3e-5, 4e-5, 0.0]) / (2.5e-9 + 1e-8) ** 0.5  # ≈ (0.268, 0.358, 0)
    assert torch.allclose(unit_normalise(x).flatten(), expected, rtol=1e-5)
    big = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    assert torch.allclose(unit_normalise(big).flatten(), torch.tensor([0.6, 0.8]), rtol=1e-6)
    # the network uses it: a hand computation at a latent scale where the epsilon dominates
    net = standin_elatentlpips()
    z0, z1 = (1e-4 * z for z in _pair(1))
    f0, f1 = net.net(z0), net.net(z1)
    hand = (z0 - z1).abs().mean(dim=(1, 2, 3))
    for lin, a, b in zip(net.lins, f0, f1):
        na = a / torch.sqrt((a * a).sum(dim=1, keepdim=True) + 1e-8)
        nb = b / torch.sqrt((b * b).sum(dim=1, keepdim=True) + 1e-8)
        hand = hand + (lin.model[1].weight.view(1, -1, 1, 1) * (na - nb) ** 2).sum(dim=1).mean(dim=(1, 2))
    assert torch.allclose(net(z0, z1), hand, rtol=1e-4)


def _batch(seed: int = 4):
    g = torch.Generator().manual_seed(seed)
    schedule = scaled_linear_schedule()
    x0 = torch.randn(2, 4, 16, 16, generator=g)
    noise = torch.randn(2, 4, 16, 16, generator=g)
    t = torch.tensor([120, 870])
    z_t = schedule.add_noise(x0, noise, t)
    eps_student = noise + 0.3 * torch.randn(2, 4, 16, 16, generator=g)
    return schedule, eps_student, z_t, t, x0, noise


def test_official_form_is_the_doubly_scaled_distance_to_the_x0_of_the_true_noise():
    schedule, eps_s, z_t, t, x0, noise = _batch()
    net = ELatentLPIPS(4, (8, 16, 32, 64, 64), augment_p=0.0)  # augmentation off: a hand computation
    net.load_state_dict(standin_elatentlpips().state_dict())
    loss = PerceptualLoss(net, schedule, "official")(eps_s, z_t, t, x0, noise, torch.Generator())
    pred = schedule.predict_x0(z_t, eps_s, t)
    target = schedule.predict_x0(z_t, noise, t)
    expected = net(SDXL_LATENT_SCALE * pred, SDXL_LATENT_SCALE * target).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_the_switch_changes_the_loss_on_a_fixed_batch():
    schedule, eps_s, z_t, t, x0, noise = _batch()
    net = standin_elatentlpips()
    official = PerceptualLoss(net, schedule, "official")
    plain = PerceptualLoss(net, schedule, "plain")
    a = official(eps_s, z_t, t, x0, noise, torch.Generator().manual_seed(9))
    again = official(eps_s, z_t, t, x0, noise, torch.Generator().manual_seed(9))
    b = plain(eps_s, z_t, t, x0)
    assert float(a) == pytest.approx(float(again), rel=1e-6)  # reproducible from the step's generator
    assert float(b) == pytest.approx(float(net(schedule.predict_x0(z_t, eps_s, t), x0).mean()), rel=1e-6)
    assert abs(float(a) - float(b)) > 0.05 * float(b)
    with pytest.raises(TrainError, match="generator"):
        official(eps_s, z_t, t, x0, noise)


@pytest.mark.hostile("distill.perceptual_form 'offical' reaching the loss", "TrainError listing official | plain")
def test_an_unknown_form_is_an_error():
    with pytest.raises(TrainError, match="official | plain"):
        PerceptualLoss(standin_elatentlpips(), scaled_linear_schedule(), "offical")


@pytest.mark.parametrize("form", ["official", "plain"])
def test_the_distill_run_records_its_perceptual_form(tiny_cfg, vae_dir, tmp_path, form):
    cfg = dataclasses.replace(tiny_cfg, distill=dataclasses.replace(tiny_cfg.distill, perceptual_form=form))
    out = distill(cfg, "student", tmp_path / "no-teacher", vae_dir, tmp_path / form, steps=1, losses=("task", "perceptual"))
    info = json.loads((out / "run.json").read_text())
    assert info["perceptual_form"] == form and info["perceptual"] == "standin"
