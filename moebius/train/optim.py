"""Optimiser and learning-rate schedule (paper Sec. 4.1: Muon, weight decay 0.1, lr 2e-4, x0.1 at 111K
and 129K of 138K iterations; Tables 2 and 5 score the 18K checkpoint of that schedule, so at a flat 2e-4).

Grouping rule, as the official script (``get_optimizer`` of hustvl/Moebius ``library/train_util.py``):
- Muon: every parameter with ndim ≥ 2 whose name contains none of ``embedding_layer``, ``conv_in``,
  ``conv_out``: linear weights, conv and depthwise-conv kernels (viewed as (out, −1)), ``pos_conv``,
  ``rel_pos_emb``. For the paper student: 225,511,736 of 226,041,531 parameters.
- AdamW: everything else: the LCG embedding table, biases, norm gains, conv_in and conv_out.
Both sides run in one optimiser, Moonlight's Muon with its AdamW backup (``moebius.train.muon``), with
one lr and weight decay. ``optimizer: adamw`` puts every parameter in ``torch.optim.AdamW``.

The schedule is a pure function of the step (lr · gamma^(milestones passed)), so nothing about it needs
to be checkpointed and a resumed run continues on the same curve.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from moebius.config import TrainConfig
from moebius.errors import TrainError
from moebius.train.muon import MoonlightMuon

EXCLUDED_FROM_MUON = ("embedding_layer", "conv_in", "conv_out")


def uses_muon(name: str, param: torch.Tensor) -> bool:
    """The grouping rule above, for one named parameter (a substring match, as the official code)."""
    return param.ndim >= 2 and not any(part in name for part in EXCLUDED_FROM_MUON)


class Optimizers:
    """Muon + AdamW driven as one optimiser (step, zero_grad, lr, state_dict)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer], base_lr: float) -> None:
        self.optimizers = optimizers
        self.base_lr = base_lr

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def set_lr(self, lr: float) -> None:
        for group in self.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("optimizers", [])
        if len(saved) != len(self.optimizers):
            raise TrainError(f"optimiser state has {len(saved)} optimisers, this run builds {len(self.optimizers)}")
        for opt, s in zip(self.optimizers, saved):
            opt.load_state_dict(s)


def build_optimizer(named_params: Iterable[tuple[str, nn.Parameter]], train: TrainConfig) -> Optimizers:
    """Moonlight's Muon (+ its AdamW backup) by the grouping rule above, or AdamW for all."""
    muon, adamw = [], []
    for name, p in named_params:
        if not p.requires_grad:
            continue
        (muon if train.optimizer == "muon" and uses_muon(name, p) else adamw).append(p)
    if not muon and not adamw:
        raise TrainError("no trainable parameters")
    if train.optimizer == "muon":
        opt: torch.optim.Optimizer = MoonlightMuon(muon, adamw, lr=train.lr, weight_decay=train.weight_decay)
    else:
        opt = torch.optim.AdamW(adamw, lr=train.lr, weight_decay=train.weight_decay)
    return Optimizers([opt], train.lr)


def milestone_steps(train: TrainConfig) -> list[int]:
    """The 0-based steps from which the lr is multiplied by gamma once more (absolute, increasing)."""
    ms = [int(m) for m in train.lr_milestones]
    if any(m < 1 for m in ms) or ms != sorted(ms):
        raise TrainError(f"lr_milestones must be increasing steps >= 1, got {list(train.lr_milestones)}")
    return ms


def lr_at(train: TrainConfig, step: int) -> float:
    """lr for 0-based ``step``: lr · gamma^(number of milestones <= step).

    The milestones are steps of the schedule itself, not of a run's length: a run that stops early
    (an ablation's 18K of the main 138K) follows the main schedule up to where it stops.
    """
    passed = sum(step >= m for m in milestone_steps(train))
    return train.lr * train.lr_gamma**passed
