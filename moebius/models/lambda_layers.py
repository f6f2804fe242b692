"""Local-λ and Interactive-λ (paper Sec. 3.2, Eq. 1 and Eq. 2; after LambdaNetworks, Bello 2021).

Both summarise a context into fixed-size linear maps ("lambdas") instead of an N×N attention map:

    λc = softmax(K)ᵀ V          (content lambda; softmax over the context positions)
    Y  = Q λc + Q λp            (no output projection)

- Local-λ (Eq. 1, self-attention equivalent): Q, K, V are 1×1 convolutions of the latent; BN on Q and V;
  the positional lambda λp is a (1, r, r) Conv3d over V, i.e. a learned r×r window per query.
- Interactive-λ (Eq. 2, cross-attention equivalent): Q from the latent, K and V from the 10 projected
  LCG tokens (BatchNorm1d on V); λp = E_pos V with a learned table ``rel_pos_emb`` [n², m, d_k, 1] that
  ties every latent position to every token, so a layer only runs at the grid size n it was built for.

Multi-query: 8 heads share one key/value (d_u = 1); d_k = C/8 and d_v = C/8, so heads · d_v = C.
Both modules take and return feature maps (B, C, H, W).

Speed only: both positional terms apply a different small matrix at every position (Q_n λp_n). As an
einsum that is a batched matmul over the N positions of h×d_k by d_k×d_v matrices, which PyTorch's CPU
kernels run position by position (a third of the student's CPU forward at baseline). On CPU, Local-λ
takes the same sums as broadcast multiply-adds over whole slabs (``_query_times_lambda``) and
Interactive-λ contracts Q with E_pos first (``InteractiveLambda._positional_cpu``). Other devices
(CUDA, meta) keep the einsums, whose batched matmuls are fast there and whose FLOPs the profile counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from moebius.errors import ModelConfigError, ModelInputError


def _query_times_lambda(q: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """y[b,h,v,n] = Σ_k q[b,h,k,n] · lam[b,k,v,n]: q (B, h, Dk, N), lam (B, Dk, Dv, N) -> (B, h, Dv, N).

    ``einsum("bhkn,bkvn->bhvn")``; on CPU one multiply-add per k over a whole (B, h, Dv, N) slab, k in
    order: 3-5x faster, and at the paper's sizes bit for bit the einsum's result on x86 CPUs (the same
    products summed in the same order). ``unbind`` keeps the backward to one stack per input.
    """
    if q.device.type != "cpu":
        return torch.einsum("bhkn,bkvn->bhvn", q, lam)
    acc = torch.promote_types(q.dtype, torch.float32)  # sum in >= fp32 under bf16 autocast, as a matmul would
    qs, lams = q.unbind(2), lam.unbind(1)  # Dk × (B, h, N), Dk × (B, Dv, N)
    y = qs[0].unsqueeze(2).to(acc) * lams[0].unsqueeze(1)  # (B, h, Dv, N)
    for qk, lk in zip(qs[1:], lams[1:]):
        y = y.addcmul_(qk.unsqueeze(2), lk.unsqueeze(1))
    return y.to(q.dtype)


def _head_dims(dim: int, heads: int) -> int:
    if dim % heads:
        raise ModelConfigError(f"λ layer: channels {dim} must be divisible by {heads} heads")
    return dim // heads


class LocalLambda(nn.Module):
    """Local-λ (Eq. 1): multi-query lambda layer with a local r×r positional lambda."""

    def __init__(self, dim: int, heads: int = 8, r: int = 15) -> None:
        super().__init__()
        if r < 1 or r % 2 == 0:
            raise ModelConfigError(f"Local-λ window r must be a positive odd number, got {r}")
        self.heads = heads
        self.dim_k = self.dim_v = _head_dims(dim, heads)
        self.to_q = nn.Conv2d(dim, self.dim_k * heads, 1, bias=False)
        self.to_k = nn.Conv2d(dim, self.dim_k, 1, bias=False)
        self.to_v = nn.Conv2d(dim, self.dim_v, 1, bias=False)
        self.norm_q = nn.BatchNorm2d(self.dim_k * heads)
        self.norm_v = nn.BatchNorm2d(self.dim_v)
        # Conv3d over (depth = value channel, H, W) with one input channel (d_u = 1): the official layout
        self.pos_conv = nn.Conv3d(1, self.dim_k, (1, r, r), padding=(0, r // 2, r // 2))

    def positional_lambda(self, v: torch.Tensor) -> torch.Tensor:
        """λp = Conv3D_{1×r×r}(V): v (B, Dv, H, W) -> (B, Dk, Dv, H·W)."""
        b, dv, hh, ww = v.shape
        # A (1, r, r) Conv3d with one input channel is the same r×r Conv2d applied to every value
        # channel; the 2-D form is several times faster on CPU and gives the same numbers.
        weight = self.pos_conv.weight.squeeze(2)  # (Dk, 1, r, r)
        lam = F.conv2d(v.reshape(b * dv, 1, hh, ww), weight, self.pos_conv.bias, padding=self.pos_conv.padding[1:])
        return lam.view(b, dv, self.dim_k, hh * ww).transpose(1, 2)  # (B, Dk, Dv, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, hh, ww = x.shape  # (B, C, H, W)
        q = self.norm_q(self.to_q(x)).view(b, self.heads, self.dim_k, hh * ww)  # (B, h, Dk, N)
        k = self.to_k(x).view(b, self.dim_k, hh * ww).softmax(dim=-1)  # (B, Dk, N), softmax over positions
        v = self.norm_v(self.to_v(x))  # (B, Dv, H, W)
        v_flat = v.view(b, self.dim_v, hh * ww)  # (B, Dv, N)
        lam_c = torch.einsum("bkn,bvn->bkv", k, v_flat)  # (B, Dk, Dv)
        y_c = torch.einsum("bhkn,bkv->bhvn", q, lam_c)  # (B, h, Dv, N)
        lam_p = self.positional_lambda(v)  # (B, Dk, Dv, N)
        y_p = _query_times_lambda(q, lam_p)  # (B, h, Dv, N)
        return (y_c + y_p).reshape(b, self.heads * self.dim_v, hh, ww)  # (B, C, H, W)


class InteractiveLambda(nn.Module):
    """Interactive-λ (Eq. 2): lambda layer whose context is the m LCG tokens."""

    def __init__(self, dim: int, context_dim: int, num_tokens: int, grid_size: int, heads: int = 8) -> None:
        super().__init__()
        if grid_size < 1 or num_tokens < 1:
            raise ModelConfigError(f"Interactive-λ needs grid_size, num_tokens >= 1, got {grid_size}, {num_tokens}")
        self.heads = heads
        self.dim_k = self.dim_v = _head_dims(dim, heads)
        self.grid_size, self.num_tokens = grid_size, num_tokens
        # E_pos: one (m × d_k) table per latent position; the official init (LambdaNetworks) is N(0, 1)
        self.rel_pos_emb = nn.Parameter(torch.randn(grid_size * grid_size, num_tokens, self.dim_k, 1))
        self.to_q = nn.Conv2d(dim, self.dim_k * heads, 1, bias=False)
        self.to_k = nn.Linear(context_dim, self.dim_k, bias=False)
        self.to_v = nn.Linear(context_dim, self.dim_v, bias=False)
        self.norm_q = nn.BatchNorm2d(self.dim_k * heads)
        self.norm_v = nn.BatchNorm1d(self.dim_v)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, hh, ww = x.shape  # (B, C, H, W); context (B, m, Dc)
        if hh != self.grid_size or ww != self.grid_size:
            raise ModelInputError(
                f"Interactive-λ was built for a {self.grid_size}x{self.grid_size} grid, got {hh}x{ww}"
            )
        if context.shape[1] != self.num_tokens:
            raise ModelInputError(f"Interactive-λ needs exactly {self.num_tokens} tokens, got {context.shape[1]}")
        q = self.norm_q(self.to_q(x)).view(b, self.heads, self.dim_k, hh * ww)  # (B, h, Dk, N)
        k = self.to_k(context).softmax(dim=1)  # (B, m, Dk), softmax over the tokens
        v = self.norm_v(self.to_v(context).transpose(1, 2))  # (B, Dv, m)
        lam_c = torch.einsum("bmk,bvm->bkv", k, v)  # (B, Dk, Dv)
        y_c = torch.einsum("bhkn,bkv->bhvn", q, lam_c)  # (B, h, Dv, N)
        if q.device.type == "cpu":
            y_p = self._positional_cpu(q, v)
        else:
            lam_p = torch.einsum("nmk,bvm->bnkv", self.rel_pos_emb.squeeze(-1), v)  # (B, N, Dk, Dv)
            y_p = torch.einsum("bhkn,bnkv->bhvn", q, lam_p)  # (B, h, Dv, N)
        return (y_c + y_p).reshape(b, self.heads * self.dim_v, hh, ww)  # (B, C, H, W)

    def _positional_cpu(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Q λp with λp = E_pos V, contracted as (Q E_pos) V: q (B, h, Dk, N), v (B, Dv, m) -> (B, h, Dv, N).

        Speed only: the einsums' sums taken in the other order, so the per-position step has m = 10
        outputs instead of Dv and the rest is one matmul (about 5x faster on CPU). Only the rounding
        differs (~1e-7 relative).
        """
        e_pos = self.rel_pos_emb.squeeze(-1).permute(1, 2, 0).contiguous()  # (N, m, Dk, 1) -> (m, Dk, N)
        acc = torch.promote_types(q.dtype, torch.float32)  # sum in >= fp32 under bf16 autocast
        qs, es = q.unbind(2), e_pos.unbind(1)  # Dk × (B, h, N), Dk × (m, N)
        qe = qs[0].unsqueeze(2).to(acc) * es[0]  # (B, h, m, N)
        for qk, ek in zip(qs[1:], es[1:]):
            qe = qe.addcmul_(qk.unsqueeze(2), ek)
        return v.unsqueeze(1) @ qe.to(v.dtype)  # (B, 1, Dv, m) @ (B, h, m, N) -> (B, h, Dv, N)
