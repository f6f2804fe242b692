"""Muon / AdamW grouping and the step lr schedule (paper Sec. 4.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from moebius.config import TrainConfig
from moebius.errors import TrainError
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
    assert groups["diff_model.proj.weight"] is True  # the only exactly-2-D hidden matrix
    for name in (
        "embedding_layer.weight",  # 2-D but an embedding table
        "diff_model.proj.bias",
        "diff_model.pw.weight",  # 1x1 conv kernels are 4-D: AdamW
        "diff_model.norm.weight",
        "diff_model.conv_in.weight",
        "diff_model.conv_out.weight",
    ):
        assert groups[name] is False, name
    opt = build_optimizer(net.named_parameters(), TrainConfig(optimizer="muon"))
    kinds = [type(o).__name__ for o in opt.optimizers]
    assert kinds == ["Muon", "AdamW"]
    assert opt.optimizers[0].param_groups[0]["params"][0] is net.diff_model["proj"].weight
    assert opt.optimizers[0].param_groups[0]["weight_decay"] == 0.1
    only_adamw = build_optimizer(net.named_parameters(), TrainConfig(optimizer="adamw"))
    assert [type(o).__name__ for o in only_adamw.optimizers] == ["AdamW"]


def test_paper_schedule_drops_at_111k_and_129k():
    train = TrainConfig()  # paper defaults: 138K steps, milestones 111/138 and 129/138, gamma 0.1
    assert milestone_steps(train) == [111_000, 129_000]
    assert lr_at(train, 110_999) == pytest.approx(2e-4)
    assert lr_at(train, 111_000) == pytest.approx(2e-5)
    assert lr_at(train, 128_999) == pytest.approx(2e-5)
    assert lr_at(train, 129_000) == pytest.approx(2e-6)


def test_schedule_is_proportional_at_smoke_scale():
    train = TrainConfig(steps=138)
    assert milestone_steps(train) == [111, 129]
    assert lr_at(train, 110) == pytest.approx(2e-4) and lr_at(train, 111) == pytest.approx(2e-5)


def test_bad_milestone_is_an_error():
    with pytest.raises(TrainError, match="fractions"):
        milestone_steps(TrainConfig(lr_milestones=(111_000.0,)))


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
    assert len(other.optimizers[1].state) == len(opt.optimizers[1].state) > 0
