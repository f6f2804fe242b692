"""Adaptive loss balancing for multi-granularity distillation (paper Sec. 3.3, Eq. 4-5).

Paper form (``balance: paper``), with G(L, θ) = ∂L/∂θ and squared Frobenius norms:
    W_F_KD  = ‖G(L_task, θ_F)‖² / ‖G(L_F_KD, θ_F)‖²
    W_perc  = ‖G(L_task, θ_F)‖² / ‖G(L_perc, θ_F)‖²            θ_F: final output layer (conv_out)
    L_out   = L_task + W_F_KD·L_F_KD + W_perc·L_perc
    W_C_task = ‖G(L_C_KD, θ_C)‖² / ‖G(L_out, θ_C)‖²             θ_C: last layer before the coarse feature
    L_total = L_C_KD + W_C_task·L_out
Weights are constants (detached).

Guard: the equations divide by a gradient norm that is zero when a loss is zero, and *almost* zero when
rounding leaves a "zero" loss at 1e-31 (seen on one CPU: W_F_KD = 9.6e32). The official script guards
its plain norms with an epsilon and a clamp; the paper form takes the same constants, squared:
    W = clamp(‖G(a)‖² / (‖G(b)‖ + ε)², 0, W_max²)   ε, W_max = 1e-6, 1e6 (F level); 1e-4, 1e4 (C level)
so a vanishing loss gets a large but bounded weight on a term that contributes nothing. Only a
non-finite ratio (a NaN or inf gradient) falls back to 1.0, counted in ``balance_fallbacks``.
Loss subsets (Table 5: c, c+f, c+f+task, all four; Table 2 KD-off: task only) drop the missing terms
and never compute their weights.

Official form (``balance: official``, ``cal_adaptive_weights_type8`` of train_distillation.py), in the
paper's names (the code calls the coarse loss "F" and the output loss "C", and its θ_F/θ_C are ours
swapped): plain norms, epsilons, clamps and static multipliers λ,
    w_f_kd = clamp(‖G(L_task, θ_F)‖ / (‖G(L_F_KD, θ_F)‖ + 1e-6), 0, 1e6)
    w_perc = clamp(‖G(L_task, θ_F)‖ / (‖G(L_perc, θ_F)‖ + 1e-6), 0, 1e6)
    w_out  = clamp(‖G(L_C_KD, θ_C)‖ / (‖G(L_task, θ_C)‖ + 1e-4), 0, 1e4)
    L_total = λ_KD·L_C_KD + w_out·(λ_task·L_task + λ_KD·w_f_kd·L_F_KD + λ_P·w_perc·L_perc)
The cross-level weight w_out is normalised by L_task's gradient alone, not by that of the whole output
group as Eq. 5 does (checked against ``cal_adaptive_weights_type8``: ``feat_weight_task`` =
‖∂featkd/∂θ_feat‖ / (‖∂task/∂θ_feat‖ + 1e-4), with featkd = L_C_KD and θ_feat = our θ_C).
The official step also takes ‖G(L_F_KD, θ_C)‖ and ‖G(L_perc, θ_C)‖, which it only logs; they are taken
here too and logged as ``gnorm_c_*`` / ``gnorm_f_*``, because each of those backward passes recomputes
the gradient-checkpointed residual blocks, whose BatchNorms then update their running statistics
again: the released weights' statistics come from a run that took them.
The official code needs all four losses; a subset (Table 5, or KD off) drops the missing terms, and a
weight whose reference L_task is missing is 1 (DEVIATION in ``official_balance``).

Both forms compute the weights from the process's own micro-batch (``reduce`` None, as the official
script: ``distill.balance_sync: per_rank``), or average them over the ranks (``all_reduce``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from moebius.errors import TrainError
from moebius.train.losses import LOSS_NAMES

Reduce = Callable[[torch.Tensor], torch.Tensor]  # e.g. all-reduce mean of a weight across DDP ranks


@dataclass
class Balanced:
    """The loss to back-propagate and the (detached) weights that built it."""

    total: torch.Tensor
    weights: dict[str, float] = field(default_factory=dict)
    fallbacks: int = 0
    norms: dict[str, float] = field(default_factory=dict)  # gradient norms the official step logs


def grad_sq_norm(loss: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """‖∂loss/∂param‖² (at least fp32, detached); 0 when the loss does not depend on ``param``."""
    if not loss.requires_grad:
        return torch.zeros((), device=param.device)
    (g,) = torch.autograd.grad(loss, param, retain_graph=True, allow_unused=True)
    if g is None:
        return torch.zeros((), device=param.device)
    return g.detach().to(torch.promote_types(g.dtype, torch.float32)).pow(2).sum()  # bf16 grads upcast


# The official script's epsilons and clamps, per level (``cal_adaptive_weights_type8``).
EPS_F, MAX_F = 1e-6, 1e6  # output level: W_F_KD, W_perc
EPS_C, MAX_C = 1e-4, 1e4  # coarse level: W_C_task


def _ratio(num_sq: torch.Tensor, den_sq: torch.Tensor, eps: float, w_max: float) -> tuple[torch.Tensor, bool]:
    """clamp(num_sq / (√den_sq + eps)², 0, w_max²), or (1.0, True) when that is not finite.

    # DEVIATION (paper §3.3, Eq. 4-5): the paper divides squared norms with no guard; this adds the
    # official script's epsilon and clamp (squared, since the norms are), so that a near-zero loss
    # cannot give a weight of 1e32. Cost: a relative change of about 2ε/‖G‖ in every weight
    # (1e-6 / 1e-3 = 0.1 % for a gradient norm of 1e-3), and weights cap at 1e12 / 1e8.
    """
    r = (num_sq / (den_sq.sqrt() + eps) ** 2).clamp(0.0, w_max**2)
    if bool(torch.isfinite(r)):
        return r, False
    return torch.ones_like(r), True


def paper_balance(
    losses: Mapping[str, torch.Tensor], theta_f: torch.Tensor, theta_c: torch.Tensor, reduce: Reduce | None = None
) -> Balanced:
    """Eq. 4-5 on any subset of {c_kd, f_kd, task, perceptual}."""
    _check_names(losses)
    red = reduce or (lambda x: x)
    weights: dict[str, float] = {}
    fallbacks = 0
    out_terms = [k for k in ("task", "f_kd", "perceptual") if k in losses]
    l_out: torch.Tensor | None = None
    if "task" in losses:
        g_task = grad_sq_norm(losses["task"], theta_f)
        l_out = losses["task"]
        for name, wname in (("f_kd", "w_f_kd"), ("perceptual", "w_perc")):
            if name in losses:
                w, fb = _ratio(g_task, grad_sq_norm(losses[name], theta_f), EPS_F, MAX_F)
                w = red(w.detach())
                fallbacks += fb
                weights[wname] = float(w)
                l_out = l_out + w * losses[name]
    elif out_terms:
        # DEVIATION (paper §3.3 / Tab. 5 "c+f"): Eq. 4 normalises against L_task; without it the
        # output-level losses enter L_out unweighted.
        l_out = sum((losses[k] for k in out_terms[1:]), losses[out_terms[0]])
    if "c_kd" in losses and l_out is not None:
        w_c, fb = _ratio(grad_sq_norm(losses["c_kd"], theta_c), grad_sq_norm(l_out, theta_c), EPS_C, MAX_C)
        w_c = red(w_c.detach())
        fallbacks += fb
        weights["w_c_task"] = float(w_c)
        total = losses["c_kd"] + w_c * l_out
    elif "c_kd" in losses:
        total = losses["c_kd"]
    else:
        assert l_out is not None  # _check_names rejects an empty set
        total = l_out
    return Balanced(total, weights, fallbacks)


def official_balance(
    losses: Mapping[str, torch.Tensor],
    theta_f: torch.Tensor,
    theta_c: torch.Tensor,
    lambda_kd: float,
    lambda_task: float,
    lambda_perceptual: float,
    reduce: Reduce | None = None,
) -> Balanced:
    """``cal_adaptive_weights_type8`` of the official code, on any subset of the four losses."""
    _check_names(losses)
    red = reduce or (lambda x: x)

    def clamp(r: torch.Tensor, hi: float) -> torch.Tensor:
        return torch.nan_to_num(r, nan=0.0, posinf=hi).clamp(0.0, hi).detach()  # never NaN

    # The official order: every loss at θ_C (its "feature" layer), then the output-level losses at θ_F.
    g_c = {k: grad_sq_norm(losses[k], theta_c).sqrt() for k in LOSS_NAMES if k in losses}
    g_f = {k: grad_sq_norm(losses[k], theta_f).sqrt() for k in ("f_kd", "task", "perceptual") if k in losses}
    norms = {f"gnorm_c_{k}": float(v) for k, v in g_c.items()} | {f"gnorm_f_{k}": float(v) for k, v in g_f.items()}

    # DEVIATION (official code: all four losses or an autograd error): Table 5's subsets and the KD-off
    # runs drop the missing terms; a weight normalised by L_task's gradient is 1 when L_task is absent
    # (c+f: L = λ_KD·(L_C_KD + L_F_KD)). With all four losses this is the official step exactly.
    weights: dict[str, float] = {}
    inner: torch.Tensor | None = None
    if "task" in losses:
        inner = lambda_task * losses["task"]
    for name, wname, lam in (("f_kd", "w_f_kd", lambda_kd), ("perceptual", "w_perc", lambda_perceptual)):
        if name not in losses:
            continue
        term = lam * losses[name]
        if "task" in losses:
            w = red(clamp(g_f["task"] / (g_f[name] + EPS_F), MAX_F))
            weights[wname] = float(w)
            term = w * term
        inner = term if inner is None else inner + term
    total = lambda_kd * losses["c_kd"] if "c_kd" in losses else None
    if inner is not None:
        if "c_kd" in losses and "task" in losses:
            w_out = red(clamp(g_c["c_kd"] / (g_c["task"] + EPS_C), MAX_C))
            weights["w_out"] = float(w_out)
            inner = w_out * inner
        total = inner if total is None else total + inner
    assert total is not None  # _check_names rejects an empty set
    return Balanced(total, weights, norms=norms)


def balance(
    form: str,
    losses: Mapping[str, torch.Tensor],
    theta_f: torch.Tensor,
    theta_c: torch.Tensor,
    *,
    lambda_kd: float = 0.01,
    lambda_task: float = 0.5,
    lambda_perceptual: float = 0.5,
    reduce: Reduce | None = None,
) -> Balanced:
    """Dispatch on ``cfg.distill.balance``; ``reduce`` follows ``cfg.distill.balance_sync``."""
    if form == "paper":
        return paper_balance(losses, theta_f, theta_c, reduce)
    if form == "official":
        return official_balance(losses, theta_f, theta_c, lambda_kd, lambda_task, lambda_perceptual, reduce)
    raise TrainError(f"unknown balance form {form!r} (paper | official)")


def _check_names(losses: Mapping[str, torch.Tensor]) -> None:
    bad = [k for k in losses if k not in LOSS_NAMES]
    if bad or not losses:
        raise TrainError(f"losses must be a non-empty subset of {LOSS_NAMES}, got {tuple(losses)}")
