"""Muon with an AdamW backup, in the form the released Moebius weights were trained with.

Paper Sec. 4.1 says "Muon, weight decay 0.1"; the official script uses Moonlight's variant
(``moonlight/muon.py`` of hustvl/Moebius, after K. Jordan's Muon). Written here from its algorithm:

Muon parameters W (any ndim ≥ 2; a conv kernel (o, i, k, k) is viewed as the matrix (o, i·k·k)):
    m  ← μ·m + g                                  μ = 0.95 (momentum buffer, shape of the matrix view)
    u  ← g + μ·m                                  Nesterov
    O  ← NS5(u)                                   5 quintic Newton–Schulz steps, in bf16 (below)
    W  ← W·(1 − lr·λ) − lr·0.2·√max(A, B)·O       A, B = the first two dims of W's *original* shape
The lr scale uses (A, B) = (out, in) of the kernel, not (out, in·k·k): for ``rel_pos_emb`` of shape
(4096, 10, 40, 1) it is 0.2·√4096 = 12.8.

NS5 (quintic Newton–Schulz, coefficients a, b, c = 3.4445, −4.7750, 2.0315): with X = u (transposed
so that rows ≤ columns), X ← X / (‖X‖_F + 1e-7), then five times
    A = X·Xᵀ;  X ← a·X + (b·A + c·A·A)·X
which drives the singular values of X towards ~1 (an approximate orthogonalisation UVᵀ).

AdamW backup (every other parameter), with eps added to √v *before* the bias correction — this is
not ``torch.optim.AdamW``'s form, and the difference depends on the step, so it is reproduced, not tuned:
    m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²          β = (0.9, 0.95)
    W ← W·(1 − lr·λ) − lr · (√(1−β2^t) / (1−β1^t)) · m / (eps + √v)
Both sides use the same lr and weight decay λ (0.1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz5(g: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The NS5 orthogonalisation above of a 2-D ``g`` (computed in ``dtype``; bf16 as the official code)."""
    assert g.ndim == 2, g.shape
    a, b, c = NS_COEFFS
    x = g.to(dtype)  # (A, B)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T  # (B, A): rows ≤ columns, so X·Xᵀ is the smaller Gram matrix
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T  # (r, r)
        x = a * x + (b * gram + c * gram @ gram) @ x  # (r, cols)
    return x.T if tall else x


def muon_lr_scale(shape: torch.Size) -> float:
    """0.2·√max(A, B) of the parameter's first two dims (Moonlight's update-RMS matching)."""
    return 0.2 * math.sqrt(max(shape[0], shape[1]))


class MoonlightMuon(torch.optim.Optimizer):
    """Muon on ``muon_params`` (ndim ≥ 2), the AdamW backup above on ``adamw_params``; one lr for both."""

    def __init__(
        self,
        muon_params: Iterable[torch.nn.Parameter],
        adamw_params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        ns_steps: int = 5,
        ns_dtype: torch.dtype = torch.bfloat16,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
    ) -> None:
        muon_params, adamw_params = list(muon_params), list(adamw_params)
        for p in muon_params:
            if p.ndim < 2:
                raise ValueError(f"Muon takes parameters with ndim >= 2, got shape {tuple(p.shape)}")
        groups = []
        if muon_params:
            groups.append({"params": muon_params, "use_muon": True})
        if adamw_params:
            groups.append({"params": adamw_params, "use_muon": False})
        defaults = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, ns_steps=ns_steps, betas=betas, eps=eps, use_muon=False
        )
        super().__init__(groups, defaults)
        self.ns_dtype = ns_dtype  # not in param groups: dtypes do not survive state_dict round trips

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's Optimizer signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["use_muon"]:
                    self._muon_update(p, group, lr, wd)
                else:
                    self._adamw_update(p, group, lr, wd)
        return loss

    def _muon_update(self, p: torch.nn.Parameter, group: dict, lr: float, wd: float) -> None:
        g = p.grad.reshape(p.size(0), -1)  # (out, in·k·k): conv kernels as matrices
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(g)
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(g)
        u = g.add(buf, alpha=group["momentum"])  # Nesterov
        o = newton_schulz5(u, group["ns_steps"], self.ns_dtype)
        p.mul_(1 - lr * wd)
        p.add_(o.view(p.shape).to(p.dtype), alpha=-lr * muon_lr_scale(p.shape))

    def _adamw_update(self, p: torch.nn.Parameter, group: dict, lr: float, wd: float) -> None:
        g = p.grad
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(g)
            state["exp_avg_sq"] = torch.zeros_like(g)
        state["step"] += 1
        t = state["step"]
        beta1, beta2 = group["betas"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - beta1)
        v.lerp_(g.square(), 1 - beta2)
        direction = m / (group["eps"] + v.sqrt())  # eps before the bias correction (see module docstring)
        step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        p.mul_(1 - lr * wd)
        p.add_(direction, alpha=-step_size)
