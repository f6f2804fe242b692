"""Gated linear attention (GLA; Yang et al. 2024), the teacher's self-attention (paper Sec. 3.2, Tab. 2).

PixelHacker's attn1 is fla's ``GatedLinearAttention`` (mode chunk, hidden C, 8 heads, expand_k 0.5,
expand_v 1, gate_low_rank_dim 16, gate_logit_normalizer 16, swish output gate fused with an RMSNorm of
eps 1e-6, no short convolution). This module keeps fla's parameter names and shapes so that official
weights load, and computes the recurrence

    S_t = Diag(exp(g_t)) S_{t-1} + k_tᵀ v_t,      o_t = (scale · q_t) S_t,     scale = d_k^-1/2

over the raster-ordered latent tokens, with g_t = logsigmoid(gk_proj(x_t)) / 16 (log forget gates, ≤ 0).

Two pure-PyTorch paths compute the same numbers: ``gla_recurrent`` (one step per token; the reference)
and ``gla_chunked`` (chunk-parallel, used by default). fla's fused Triton kernel is used only when fla
imports AND the tensors are on CUDA; fla is optional and not a dependency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from moebius.errors import ModelConfigError

try:  # optional fused kernel; never required
    from fla.ops.gla import chunk_gla as _fla_chunk_gla  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 - any import failure (missing, no triton, ABI) means "not available"
    _fla_chunk_gla = None


def gla_recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Naive token-by-token GLA. q, k, g: (B, H, T, Dk); v: (B, H, T, Dv) -> (B, H, T, Dv)."""
    b, h, t, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    state = q.new_zeros(b, h, dk, v.shape[-1])  # (B, H, Dk, Dv)
    outputs = []
    for i in range(t):
        state = state * g[:, :, i].exp().unsqueeze(-1) + k[:, :, i].unsqueeze(-1) * v[:, :, i].unsqueeze(-2)
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, i] * scale, state))  # (B, H, Dv)
    return torch.stack(outputs, dim=2)  # (B, H, T, Dv)


def gla_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    chunk_size: int = 16,
) -> torch.Tensor:
    """Chunk-parallel GLA, equal to ``gla_recurrent``. Shapes as there.

    Inside a chunk the decays are applied pairwise as exp(b_i - b_j) with b the in-chunk cumulative log
    gate, which is <= 1 for j <= i, so nothing overflows whatever the gate values; across chunks a
    running state is carried, as in the recurrent form. The pairwise tensor costs L·Dk per token, so
    the chunk is short (16, fla's sub-chunk size; 8 runs about 1.5x faster on CPU at 64x64 latents);
    the chunk size changes speed and rounding, not the result.
    """
    if chunk_size < 1:
        raise ModelConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    b, h, t, dk = q.shape
    dv = v.shape[-1]
    scale = dk**-0.5 if scale is None else scale
    pad = (-t) % chunk_size
    if pad:
        # zero keys add nothing to the state and zero log-gates do not decay it; padded outputs are cut
        q, k, v, g = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v, g))
    n = (t + pad) // chunk_size
    q, k, g = (x.reshape(b, h, n, chunk_size, dk) for x in (q, k, g))  # (B, H, N, L, Dk)
    v = v.reshape(b, h, n, chunk_size, dv)  # (B, H, N, L, Dv)

    acc = torch.promote_types(g.dtype, torch.float32)  # sum log-gates in >= fp32 even under bf16
    cum = g.to(acc).cumsum(dim=-2).to(q.dtype)  # (B, H, N, L, Dk) inclusive in-chunk log decay
    causal = torch.ones(chunk_size, chunk_size, dtype=q.dtype, device=q.device).tril()  # (L, L)
    # intra-chunk scores A_ij = sum_d q_id k_jd exp(b_id - b_jd), j <= i. For j > i the exponent is
    # positive; clamping it at 0 keeps exp finite and the causal mask then zeroes those entries.
    # (in-place on fresh temporaries: the same numbers with fewer large allocations)
    decay = (cum.unsqueeze(-2) - cum.unsqueeze(-3)).clamp_(max=0).exp_()  # (B, H, N, L, L, Dk)
    scores = (q.unsqueeze(-2) * k.unsqueeze(-3)).mul_(decay).sum(-1).mul_(causal * scale)  # (B, H, N, L, L)
    out = scores @ v  # (B, H, N, L, Dv)

    # inter-chunk: read the state left by earlier chunks, then fold this chunk into it
    q_in = q * cum.exp() * scale  # (B, H, N, L, Dk) decay from chunk start to position i
    k_out = k * (cum[..., -1:, :] - cum).exp()  # (B, H, N, L, Dk) decay from position j to chunk end
    chunk_decay = cum[..., -1, :].exp()  # (B, H, N, Dk)
    state = q.new_zeros(b, h, dk, dv)
    carried = []
    for c in range(n):
        carried.append(q_in[:, :, c] @ state)  # (B, H, L, Dv)
        state = state * chunk_decay[:, :, c].unsqueeze(-1) + k_out[:, :, c].transpose(-1, -2) @ v[:, :, c]
    out = out + torch.stack(carried, dim=2)
    return out.reshape(b, h, n * chunk_size, dv)[:, :, :t]  # (B, H, T, Dv)


class GatedRMSNorm(nn.Module):
    """RMSNorm over the head dim, then times swish(gate): fla's ``FusedRMSNormGated`` as a plain module."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # normalise in >= fp32
        rms = xf.pow(2).mean(-1, keepdim=True).add(self.eps).rsqrt()
        return (xf * rms).to(x.dtype) * self.weight * F.silu(gate)


class GatedLinearAttention(nn.Module):
    """fla-compatible GLA layer on tokens (B, N, C); parameter names/shapes as fla 0.1-0.3."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int = 8,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_low_rank_dim: int = 16,
        gate_logit_normalizer: float = 16.0,
        norm_eps: float = 1e-6,
        chunk_size: int = 16,
    ) -> None:
        super().__init__()
        key_dim, value_dim = int(hidden_size * expand_k), int(hidden_size * expand_v)
        if key_dim % num_heads or value_dim % num_heads:
            raise ModelConfigError(
                f"GLA: key dim {key_dim} and value dim {value_dim} must be divisible by {num_heads} heads"
            )
        self.num_heads = num_heads
        self.head_k_dim, self.head_v_dim = key_dim // num_heads, value_dim // num_heads
        self.gate_logit_normalizer = gate_logit_normalizer
        self.chunk_size = chunk_size
        # registration order = fla's, so that state_dict() key order matches the official manifest
        self.q_proj = nn.Linear(hidden_size, key_dim, bias=False)
        self.k_proj = nn.Linear(hidden_size, key_dim, bias=False)
        self.v_proj = nn.Linear(hidden_size, value_dim, bias=False)
        self.g_proj = nn.Linear(hidden_size, value_dim, bias=False)
        self.gk_proj = nn.Sequential(
            nn.Linear(hidden_size, gate_low_rank_dim, bias=False),
            nn.Linear(gate_low_rank_dim, key_dim, bias=True),
        )
        self.o_proj = nn.Linear(value_dim, hidden_size, bias=False)
        self.g_norm_swish_gate = GatedRMSNorm(self.head_v_dim, eps=norm_eps)

    def _heads(self, x: torch.Tensor, d: int) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, d).transpose(1, 2)  # (B, H, N, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape  # (B, N, C)
        q = self._heads(self.q_proj(x), self.head_k_dim)  # (B, H, N, Dk)
        k = self._heads(self.k_proj(x), self.head_k_dim)  # (B, H, N, Dk)
        v = self._heads(self.v_proj(x), self.head_v_dim)  # (B, H, N, Dv)
        gk = F.logsigmoid(self.gk_proj(x)) / self.gate_logit_normalizer  # (B, N, H*Dk), <= 0
        gk = self._heads(gk, self.head_k_dim)  # (B, H, N, Dk)
        if _fla_chunk_gla is not None and x.is_cuda:
            # fla >= 0.2 takes (B, T, H, D) tensors and returns (output, final_state)
            o, _ = _fla_chunk_gla(*(t.transpose(1, 2) for t in (q, k, v, gk)), scale=self.head_k_dim**-0.5)
            o = o.transpose(1, 2)
        else:
            o = gla_chunked(q, k, v, gk, chunk_size=self.chunk_size)  # (B, H, N, Dv)
        o = o.transpose(1, 2)  # (B, N, H, Dv)
        gate = self.g_proj(x).view(b, n, self.num_heads, self.head_v_dim)  # (B, N, H, Dv)
        o = self.g_norm_swish_gate(o, gate).reshape(b, n, -1)  # (B, N, H*Dv)
        return self.o_proj(o)  # (B, N, C)
