"""Muon / AdamW grouping and the step lr schedule (paper Sec. 4.1)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from moebius.config import TrainConfig
from moebius.errors import TrainError
from moebius.models.registry import build_model
from moebius.train.muon import MoonlightMuon, muon_lr_scale, newton_schulz5
from moebius.train.optim import build_optimizer, lr_at, milestone_steps, uses_muon


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding_layer = nn.Embedding(20, 8)
        self.diff_model = nn.ModuleDict(
            {
                "conv_in": nn.Conv2d(9, 8, 3),
                "proj": nn.Linear(8, 8),
                "pw": nn.Conv2d(8, 8, 1),
                "norm": nn.GroupNorm(2, 8),
                "conv_out": nn.Conv2d(8, 4, 1),
            }
        )


def test_grouping_rule():
    net = _Net()
    groups = {name: uses_muon(name, p) for name, p in net.named_parameters()}
    for name in ("diff_model.proj.weight", "diff_model.pw.weight"):  # ndim >= 2 hidden weights, convs included
        assert groups[name] is True, name
    for name in (
        "embedding_layer.weight",  # 2-D but an embedding table
        "diff_model.proj.bias",
        "diff_model.norm.weight",
        "diff_model.conv_in.weight",
        "diff_model.conv_out.weight",
    ):
        assert groups[name] is False, name
    opt = build_optimizer(net.named_parameters(), TrainConfig(optimizer="muon"))
    (muon,) = opt.optimizers
    assert isinstance(muon, MoonlightMuon)
    assert [g["use_muon"] for g in muon.param_groups] == [True, False]
    assert {id(p) for p in muon.param_groups[0]["params"]} == {id(net.diff_model["proj"].weight), id(net.diff_model["pw"].weight)}
    assert all(g["weight_decay"] == 0.1 for g in muon.param_groups)
    only_adamw = build_optimizer(net.named_parameters(), TrainConfig(optimizer="adamw"))
    assert [type(o).__name__ for o in only_adamw.optimizers] == ["AdamW"]


def test_paper_student_grouping_matches_the_official_count():
    """official_training_step.md: 288 tensors / 225,511,736 parameters to Muon, the rest (529,795) to AdamW."""
    with torch.device("meta"):
        student = build_model("student", "paper")
    named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    muon = [p for n, p in named if uses_muon(n, p)]
    adamw = [p for n, p in named if not uses_muon(n, p)]
    assert (len(muon), sum(p.numel() for p in muon)) == (288, 225_511_736)
    assert (len(adamw), sum(p.numel() for p in adamw)) == (543, 529_795)


def _ns5_hand(u: np.ndarray) -> np.ndarray:
    """The quintic Newton–Schulz of the module docstring, by hand in float64."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = u.T if u.shape[0] > u.shape[1] else u
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(5):
        g = x @ x.T
        x = a * x + (b * g + c * g @ g) @ x
    return x.T if u.shape[0] > u.shape[1] else x


def test_muon_step_on_a_conv_matches_a_hand_computation():
    """Two steps on a 3x3 conv kernel (6, 4, 3, 3) and an AdamW-backup bias, float64 throughout."""
    g = np.random.default_rng(0)
    w0, b0 = g.normal(size=(6, 4, 3, 3)), g.normal(size=(6,))
    grads = [(g.normal(size=w0.shape), g.normal(size=b0.shape)) for _ in range(2)]
    lr, wd, mu = 0.02, 0.1, 0.95
    beta1, beta2, eps = 0.9, 0.95, 1e-8

    w, bias = w0.copy(), b0.copy()
    buf = np.zeros((6, 36))
    m, v = np.zeros(6), np.zeros(6)
    for t, (gw, gb) in enumerate(grads, start=1):
        gm = gw.reshape(6, 36)
        buf = mu * buf + gm
        o = _ns5_hand(gm + mu * buf)
        w = w * (1 - lr * wd) - lr * 0.2 * np.sqrt(6) * o.reshape(w.shape)  # max(out, in) = 6, not in·9
        m = beta1 * m + (1 - beta1) * gb
        v = beta2 * v + (1 - beta2) * gb**2
        bias = bias * (1 - lr * wd) - lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (eps + np.sqrt(v))

    tw = torch.nn.Parameter(torch.tensor(w0))
    tb = torch.nn.Parameter(torch.tensor(b0))
    opt = MoonlightMuon([tw], [tb], lr=lr, weight_decay=wd, ns_dtype=torch.float64)
    for gw, gb in grads:
        tw.grad, tb.grad = torch.tensor(gw), torch.tensor(gb)
        opt.step()
    np.testing.assert_allclose(tw.detach().numpy(), w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tb.detach().numpy(), bias, rtol=1e-10, atol=1e-12)
    # the step is not torch's AdamW: eps before the bias correction differs at step 1
    assert muon_lr_scale(torch.Size([4096, 10, 40, 1])) == pytest.approx(12.8)


def test_newton_schulz_in_bf16_approximately_orthogonalises():
    """The official dtype (bf16): singular values land near 1 (NS5 gives roughly 0.7-1.2), not exactly."""
    u = torch.randn(16, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = torch.linalg.svdvals(newton_schulz5(u).double())
    assert float(s.min()) > 0.5 and float(s.max()) < 1.5
    s64 = torch.linalg.svdvals(newton_schulz5(u, dtype=torch.float64))
    assert torch.allclose(s, s64, atol=0.1)


def test_paper_schedule_drops_at_111k_and_129k():
    train = TrainConfig()  # paper defaults: 138K steps, milestones at steps 111K and 129K, gamma 0.1
    assert milestone_steps(train) == [111_000, 129_000]
    assert lr_at(train, 110_999) == pytest.approx(2e-4)
    assert lr_at(train, 111_000) == pytest.approx(2e-5)
    assert lr_at(train, 128_999) == pytest.approx(2e-5)
    assert lr_at(train, 129_000) == pytest.approx(2e-6)


def test_a_shorter_run_is_the_main_schedule_truncated():
    """Tables 2 and 5 report "the 18K checkpoint" of the main schedule: a flat 2e-4 up to 18K."""
    from pathlib import Path

    from moebius.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / "full.yaml")
    ablation = dataclasses.replace(cfg.distill.train, steps=cfg.ablation.steps)  # as runs.distill(steps=…)
    assert cfg.ablation.steps == 18_000
    assert [lr_at(ablation, s) for s in (0, 14_478, 16_826, 17_999)] == pytest.approx([2e-4] * 4)
    assert lr_at(cfg.distill.train, 110_999) == pytest.approx(2e-4)
    assert lr_at(cfg.distill.train, 111_000) == pytest.approx(2e-5)
    assert lr_at(cfg.distill.train, 129_000) == pytest.approx(2e-6)


def test_bad_milestones_are_an_error():
    with pytest.raises(TrainError, match="increasing"):
        milestone_steps(TrainConfig(lr_milestones=(129_000, 111_000)))
    with pytest.raises(TrainError, match="increasing"):
        milestone_steps(TrainConfig(lr_milestones=(0,)))


def test_set_lr_and_state_round_trip():
    net = _Net()
    opt = build_optimizer(net.named_parameters(), TrainConfig())
    opt.set_lr(0.5)
    assert all(g["lr"] == 0.5 for g in opt.param_groups)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    state = opt.state_dict()
    other = build_optimizer(_Net().named_parameters(), TrainConfig())
    other.load_state_dict(state)
    assert len(other.optimizers[0].state) == len(opt.optimizers[0].state) > 0
