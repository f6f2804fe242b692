"""Adaptive weights (Eq. 4-5 and the official form) against a hand computation on a linear network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moebius.errors import TrainError
from moebius.train.balance import balance, grad_sq_norm, official_balance, paper_balance


def _setup(seed: int = 0):
    """h = A x (θ_C = A), o = B h (θ_F = B); four MSE losses against different targets."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(5, 3))
    A = g.normal(size=(4, 3))
    B = g.normal(size=(2, 4))
    tgt = {"h_T": g.normal(size=(5, 4)), "o_T": g.normal(size=(5, 2)), "eps": g.normal(size=(5, 2)), "x0": g.normal(size=(5, 2))}
    return x, A, B, tgt


def _torch_losses(x, A, B, tgt):
    tA = torch.tensor(A, requires_grad=True)
    tB = torch.tensor(B, requires_grad=True)
    tx = torch.tensor(x)
    h = tx @ tA.T
    o = h @ tB.T
    mse = lambda a, b: ((a - torch.tensor(b)) ** 2).mean()
    losses = {"c_kd": mse(h, tgt["h_T"]), "f_kd": mse(o, tgt["o_T"]), "task": mse(o, tgt["eps"]), "perceptual": mse(o, tgt["x0"])}
    return losses, tA, tB


def _hand_grads(x, A, B, tgt):
    """Closed-form gradients of every loss w.r.t. A and B (numpy)."""
    h = x @ A.T
    o = h @ B.T
    gA, gB = {}, {}
    for name, target in (("f_kd", tgt["o_T"]), ("task", tgt["eps"]), ("perceptual", tgt["x0"])):
        r = 2.0 * (o - target) / o.size  # dL/do
        gB[name] = r.T @ h
        gA[name] = (r @ B).T @ x
    r = 2.0 * (h - tgt["h_T"]) / h.size
    gA["c_kd"], gB["c_kd"] = r.T @ x, np.zeros_like(B)
    return gA, gB


def _guarded(num_sq: float, den_sq: float, eps: float, w_max: float) -> float:
    """The paper form's guard, by hand: clamp(num² / (den + eps)², 0, w_max²)."""
    return min(max(num_sq / (np.sqrt(den_sq) + eps) ** 2, 0.0), w_max**2)


def test_paper_weights_match_hand_computation():
    x, A, B, tgt = _setup()
    gA, gB = _hand_grads(x, A, B, tgt)
    sq = lambda m: float((m**2).sum())
    w_f = _guarded(sq(gB["task"]), sq(gB["f_kd"]), 1e-6, 1e6)
    w_p = _guarded(sq(gB["task"]), sq(gB["perceptual"]), 1e-6, 1e6)
    g_out_A = gA["task"] + w_f * gA["f_kd"] + w_p * gA["perceptual"]
    w_c = _guarded(sq(gA["c_kd"]), sq(g_out_A), 1e-4, 1e4)
    # the guard moves the weights by ~2ε/‖G‖ only: the unguarded Eq. 4-5 values are within 0.1 %
    assert w_f == pytest.approx(sq(gB["task"]) / sq(gB["f_kd"]), rel=1e-3)
    assert w_c == pytest.approx(sq(gA["c_kd"]) / sq(g_out_A), rel=1e-3)

    losses, tA, tB = _torch_losses(x, A, B, tgt)
    out = paper_balance(losses, theta_f=tB, theta_c=tA)
    assert out.weights["w_f_kd"] == pytest.approx(w_f, rel=1e-9)
    assert out.weights["w_perc"] == pytest.approx(w_p, rel=1e-9)
    assert out.weights["w_c_task"] == pytest.approx(w_c, rel=1e-9)
    expected = float((losses["c_kd"] + w_c * (losses["task"] + w_f * losses["f_kd"] + w_p * losses["perceptual"])).detach())
    assert float(out.total.detach()) == pytest.approx(expected, rel=1e-9)

    # the weights are constants: the gradient of L_total is the weighted sum of the loss gradients
    out.total.backward()
    expected_gB = w_c * (gB["task"] + w_f * gB["f_kd"] + w_p * gB["perceptual"])
    np.testing.assert_allclose(tB.grad.numpy(), expected_gB, rtol=1e-9)
    np.testing.assert_allclose(tA.grad.numpy(), gA["c_kd"] + w_c * g_out_A, rtol=1e-9)


def test_official_weights_match_hand_computation():
    x, A, B, tgt = _setup(seed=1)
    gA, gB = _hand_grads(x, A, B, tgt)
    n = lambda m: float(np.sqrt((m**2).sum()))
    lam_kd, lam_task, lam_p = 0.01, 0.5, 0.5
    w_f = min(max(n(gB["task"]) / (n(gB["f_kd"]) + 1e-6), 0), 1e6)
    w_p = min(max(n(gB["task"]) / (n(gB["perceptual"]) + 1e-6), 0), 1e6)
    w_out = min(max(n(gA["c_kd"]) / (n(gA["task"]) + 1e-4), 0), 1e4)

    losses, tA, tB = _torch_losses(x, A, B, tgt)
    out = official_balance(losses, tB, tA, lam_kd, lam_task, lam_p)
    assert out.weights["w_f_kd"] == pytest.approx(w_f, rel=1e-9)
    assert out.weights["w_perc"] == pytest.approx(w_p, rel=1e-9)
    assert out.weights["w_out"] == pytest.approx(w_out, rel=1e-9)
    expected = lam_kd * losses["c_kd"] + w_out * (
        lam_task * losses["task"] + lam_kd * w_f * losses["f_kd"] + lam_p * w_p * losses["perceptual"]
    )
    assert float(out.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-9)
    # and the seven gradient norms the official step takes (three only logged there), in paper names
    assert out.norms == pytest.approx({
        **{f"gnorm_c_{k}": n(gA[k]) for k in ("c_kd", "f_kd", "task", "perceptual")},
        **{f"gnorm_f_{k}": n(gB[k]) for k in ("f_kd", "task", "perceptual")},
    }, rel=1e-9)


def test_official_cross_level_weight_uses_l_task_not_the_output_group():
    """In the code's names featkd = L_C_KD, outkd = L_F_KD, θ_feat = θ_C: feat_weight_task is
    ‖∂L_C_KD/∂θ_C‖ / (‖∂L_task/∂θ_C‖ + 1e-4); Eq. 5 would divide by the gradient of L_out instead."""
    x, A, B, tgt = _setup(seed=3)
    gA, _ = _hand_grads(x, A, B, tgt)
    n = lambda m: float(np.sqrt((m**2).sum()))
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    w_out = official_balance(losses, tB, tA, 0.01, 0.5, 0.5).weights["w_out"]
    assert w_out == pytest.approx(n(gA["c_kd"]) / (n(gA["task"]) + 1e-4), rel=1e-9)
    out_group = gA["task"] + gA["f_kd"] + gA["perceptual"]
    assert abs(w_out - n(gA["c_kd"]) / n(out_group)) > 1e-3 * w_out  # a different number


@pytest.mark.parametrize(
    "subset", [("c_kd",), ("c_kd", "f_kd"), ("c_kd", "f_kd", "task"), ("task",), ("f_kd", "task", "perceptual")]
)
def test_official_form_on_subsets_drops_missing_terms(subset):
    x, A, B, tgt = _setup(seed=4)
    gA, gB = _hand_grads(x, A, B, tgt)
    n = lambda m: float(np.sqrt((m**2).sum()))
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    out = official_balance({k: losses[k] for k in subset}, tB, tA, 0.01, 0.5, 0.5)
    has = set(subset)
    w_f = n(gB["task"]) / (n(gB["f_kd"]) + 1e-6) if {"task", "f_kd"} <= has else 1.0
    w_p = n(gB["task"]) / (n(gB["perceptual"]) + 1e-6) if {"task", "perceptual"} <= has else 1.0
    w_out = n(gA["c_kd"]) / (n(gA["task"]) + 1e-4) if {"task", "c_kd"} <= has else 1.0
    inner = sum(
        float(losses[k].detach()) * c
        for k, c in (("task", 0.5), ("f_kd", 0.01 * w_f), ("perceptual", 0.5 * w_p)) if k in has
    )
    expected = (0.01 * float(losses["c_kd"].detach()) if "c_kd" in has else 0.0) + w_out * inner
    assert float(out.total.detach()) == pytest.approx(expected, rel=1e-9)
    # a weight is reported only where its reference L_task is there
    assert ("w_out" in out.weights) == ({"task", "c_kd"} <= has)
    assert ("w_f_kd" in out.weights) == ({"task", "f_kd"} <= has)


def test_balance_sync_reduce_is_applied_to_every_weight_or_not_at_all():
    x, A, B, tgt = _setup(seed=6)
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    calls = []

    def fake_all_reduce(w):
        calls.append(float(w))
        return torch.full_like(w, 2.0)  # as if the other ranks had pulled the mean to 2

    reduced = official_balance(losses, tB, tA, 0.01, 0.5, 0.5, reduce=fake_all_reduce)
    assert len(calls) == 3 and reduced.weights == {"w_f_kd": 2.0, "w_perc": 2.0, "w_out": 2.0}
    own = official_balance(losses, tB, tA, 0.01, 0.5, 0.5)  # per_rank: this micro-batch's own weights
    assert [own.weights[k] for k in ("w_f_kd", "w_perc", "w_out")] == pytest.approx(calls, rel=1e-12)


def test_official_form_clamps_and_never_returns_nan():
    x, A, B, tgt = _setup(seed=2)
    tgt["o_T"] = (x @ A.T) @ B.T  # L_F_KD = 0 exactly: zero gradient, ratio hits the clamp
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    out = official_balance(losses, tB, tA, 0.01, 0.5, 0.5)
    assert out.weights["w_f_kd"] == pytest.approx(min(float(grad_sq_norm(losses["task"], tB)) ** 0.5 / 1e-6, 1e6))
    assert all(np.isfinite(v) for v in out.weights.values())


@pytest.mark.parametrize("subset", [("c_kd",), ("c_kd", "f_kd"), ("c_kd", "f_kd", "task"), ("task",)])
def test_paper_form_on_table5_subsets(subset):
    x, A, B, tgt = _setup(seed=3)
    gA, gB = _hand_grads(x, A, B, tgt)
    sq = lambda m: float((m**2).sum())
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    out = paper_balance({k: losses[k] for k in subset}, tB, tA)
    if subset == ("c_kd",):
        assert out.weights == {} and float(out.total.detach()) == pytest.approx(float(losses["c_kd"].detach()))
    elif subset == ("c_kd", "f_kd"):  # no L_task: L_out = L_F_KD unweighted
        w_c = _guarded(sq(gA["c_kd"]), sq(gA["f_kd"]), 1e-4, 1e4)
        assert set(out.weights) == {"w_c_task"}
        assert out.weights["w_c_task"] == pytest.approx(w_c, rel=1e-9)
    elif subset == ("c_kd", "f_kd", "task"):
        w_f = _guarded(sq(gB["task"]), sq(gB["f_kd"]), 1e-6, 1e6)
        w_c = _guarded(sq(gA["c_kd"]), sq(gA["task"] + w_f * gA["f_kd"]), 1e-4, 1e4)
        assert set(out.weights) == {"w_f_kd", "w_c_task"}
        assert out.weights["w_c_task"] == pytest.approx(w_c, rel=1e-9)
    else:
        assert out.weights == {} and float(out.total.detach()) == pytest.approx(float(losses["task"].detach()))


@pytest.mark.hostile(
    "distillation where a KD loss is zero, or rounds to 1e-31 (a 'zero' loss on some CPUs)",
    "paper-form weight bounded by the official clamp (≤ 1e12), total and gradients finite",
)
@pytest.mark.parametrize("residual", [0.0, 1e-16])  # L_F_KD = 0 exactly, or ~1e-32 from rounding
def test_vanishing_loss_gives_a_bounded_weight_not_1e32(residual):
    x, A, B, tgt = _setup(seed=4)
    tgt["o_T"] = (x @ A.T) @ B.T + residual  # the student's output: L_F_KD is (almost) zero
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    assert float(losses["f_kd"].detach()) <= 1e-31
    out = paper_balance(losses, tB, tA)
    g_task_sq = float(grad_sq_norm(losses["task"], tB))
    g_fkd = float(grad_sq_norm(losses["f_kd"], tB)) ** 0.5
    # exactly the guarded ratio (ε = 1e-6 dominates the vanishing norm), never more than 1e12
    assert out.weights["w_f_kd"] == pytest.approx(min(g_task_sq / (g_fkd + 1e-6) ** 2, 1e12), rel=1e-6)
    assert out.weights["w_f_kd"] <= 1e12 and out.fallbacks == 0
    # the vanishing term adds (almost) nothing: total equals the balance without L_F_KD to 1e-9
    rest = paper_balance({k: v for k, v in losses.items() if k != "f_kd"}, tB, tA)
    assert float(out.total.detach()) == pytest.approx(float(rest.total.detach()), rel=1e-6)
    out.total.backward()
    assert torch.isfinite(tA.grad).all() and torch.isfinite(tB.grad).all()


def test_non_finite_gradient_falls_back_to_one():
    x, A, B, tgt = _setup(seed=5)
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    losses["perceptual"] = losses["perceptual"] * float("nan")
    out = paper_balance(losses, tB, tA)
    assert out.weights["w_perc"] == 1.0 and out.fallbacks >= 1


def test_unknown_form_and_unknown_loss_are_errors():
    x, A, B, tgt = _setup()
    losses, tA, tB = _torch_losses(x, A, B, tgt)
    with pytest.raises(TrainError, match="unknown balance"):
        balance("adaptive", losses, tB, tA)
    with pytest.raises(TrainError, match="subset"):
        balance("paper", {"kd": losses["c_kd"]}, tB, tA)
