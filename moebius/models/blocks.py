"""U-Net building blocks: residual blocks, the LλMI / GLA transformer block and its FFNs (paper Sec. 3.2).

Every Table 2 architecture is the same U-Net with four switches; this module holds the pieces each
switch selects, with the parameter names of the official code so that official weights load:

- conv:  ``Conv`` -> ``ResnetBlock`` with 3×3 convolutions (diffusers ``ResnetBlock2D`` layout);
         ``DWConv`` -> the same block with ``DWConv2d`` (timm ``DepthwiseSeparableConv`` layout).
- self-attention:  ``GLA`` (``gla.GatedLinearAttention``) or ``LocalLambda`` (Eq. 1).
- cross-attention: ``CA`` (``CrossAttention``, diffusers ``Attention`` layout) or ``InteractiveLambda`` (Eq. 2).
- FFN: ``FFN`` (``GEGLUFeedForward``, diffusers ``FeedForward``) or ``MixFFN`` (SANA ``GLUMBConv``).

``TransformerBlock`` is Eq. 3 (the LλMI block when all three λ/Mix switches are on):
X1 = A1(LN(X)) + X;  X2 = A2(LN(X1), E_LCG) + X1;  X_out = FFN(LN(X2)) + X2.

Memory layout (speed only, same numbers up to rounding): inside a ``SpatialTransformer`` the tokens
(B, N, C) are kept contiguous, so the LayerNorms, the residual adds and the token layers read them
in place; a contiguous (B, N, C) is a channels-last (B, C, H, W) as it stands, which is what Mix-FFN
gets (its depthwise 3×3 is several times faster channels-last on CPU). The λ layers, which view their
maps as (B, heads, d, N), get one NCHW copy each, and the block hands an NCHW map back to the U-Net.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from moebius.errors import ModelConfigError
from moebius.models.gla import GatedLinearAttention
from moebius.models.lambda_layers import InteractiveLambda, LocalLambda

SelfAttention = Literal["GLA", "LocalLambda"]
CrossAttn = Literal["CA", "InteractiveLambda"]
FFNKind = Literal["FFN", "MixFFN"]
ConvKind = Literal["Conv", "DWConv"]


def group_norm(groups: int, channels: int, eps: float) -> nn.GroupNorm:
    """GroupNorm with a clear error when the groups do not divide the channels."""
    if channels % groups:
        raise ModelConfigError(f"GroupNorm: {groups} groups do not divide {channels} channels")
    return nn.GroupNorm(groups, channels, eps=eps, affine=True)


# --------------------------------------------------------------------------------------------------
# Convolutions
# --------------------------------------------------------------------------------------------------


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d followed by an optional ReLU (timm ``BatchNormAct2d``; same state-dict keys)."""

    def __init__(self, channels: int, act: bool) -> None:
        super().__init__(channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DWConv2d(nn.Module):
    """Depthwise-separable conv: conv_dw (k×k, groups=in) -> bn1+ReLU -> conv_pw (1×1) -> bn2 (+ identity)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels, bias=False
        )
        self.bn1 = BatchNormAct2d(in_channels, act=True)
        self.conv_pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = BatchNormAct2d(out_channels, act=False)
        # timm adds the input back when the shape is unchanged (stride is always 1 here)
        self.has_skip = in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn1(self.conv_dw(x))  # (B, Cin, H, W)
        h = self.bn2(self.conv_pw(h))  # (B, Cout, H, W)
        return h + x if self.has_skip else h


# Wide 3×3 convs on small maps (the 16×16 and 8×8 levels of the paper-size U-Net, 640-2560 channels)
# take the GEMM path of conv3x3(): there oneDNN's direct conv runs at a fraction of its large-map speed.
# Measured on one CPU thread, every teacher shape (benchmarks/results/conv3x3_cpu.csv), GEMM time over
# conv time: 0.37-0.47 at 8×8 and 0.70-0.92 at 16×16 at batch 1; 0.56-0.63 at 8×8 batch 2; 0.85-1.01
# at 16×16 batch 2; 0.81-1.22 at batch 8 and 16. Narrow convs (the smoke models' 64-256 channels there)
# are 1.3-4.8× *slower* as a GEMM at every batch, so they keep oneDNN's conv.
# The bound counts batch × *input* pixels; a stride-2 conv has a quarter of that as matmul columns, so
# the teacher's one 16×16 stride-2 conv takes oneDNN at batch 2, where the GEMM measured 0.60.
_GEMM_MAX_PIXELS = 256  # batch × input pixels
_GEMM_MIN_CHANNELS = 512


def takes_gemm(conv: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``conv3x3(conv, x)`` runs as im2col + one matmul (see there)."""
    return (
        type(conv) is nn.Conv2d
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and x.ndim == 4
        and x.shape[0] * x.shape[-2] * x.shape[-1] <= _GEMM_MAX_PIXELS
        and conv.in_channels >= _GEMM_MIN_CHANNELS
        and conv.kernel_size == (3, 3)
        and conv.groups == 1
        and conv.dilation == (1, 1)
        and conv.padding_mode == "zeros"
        and not (conv._forward_hooks or conv._forward_pre_hooks)
    )


def conv3x3(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``; a wide plain 3×3 ``nn.Conv2d`` on a small CPU map runs as im2col + one matmul.

    Speed only, CPU inference (no autograd), at least ``_GEMM_MIN_CHANNELS`` input channels and at most
    ``_GEMM_MAX_PIXELS`` batch × pixels: the 3×3 windows are unfolded to (B, 9·Cin, H'·W'), the batch
    is folded into the columns (9·Cin, B·H'·W'), and one matmul by the (Cout, 9·Cin) view of the weight
    gives every output (a broadcast (B, ...) matmul would copy the weight per image: 1.2-2× slower at
    batch 2). Same sums in another order (rounding-level differences). The module keeps its exact type
    (the thop MAC count looks modules up by ``type``) and is called as usual everywhere else: on the
    meta device, with grad, on large maps, and whenever hooks are registered on it.
    """
    if takes_gemm(conv, x):
        b, _, h, w = x.shape
        (s, _), (p, _) = conv.stride, conv.padding
        ho, wo = (h + 2 * p - 3) // s + 1, (w + 2 * p - 3) // s + 1
        cols = F.unfold(x, 3, padding=p, stride=s)  # (B, 9·Cin, H'·W'), rows ordered (cin, kr, kc)
        cols = cols.transpose(0, 1).reshape(cols.shape[1], b * ho * wo)  # (9·Cin, B·H'·W')
        out = conv.weight.reshape(conv.out_channels, -1) @ cols  # (Cout, B·H'·W')
        if conv.bias is not None:
            out = out + conv.bias.to(out.dtype)[:, None]
        return out.view(conv.out_channels, b, ho, wo).transpose(0, 1).contiguous()  # (B, Cout, H', W')
    return conv(x)


def make_conv3x3(kind: ConvKind, in_channels: int, out_channels: int) -> nn.Module:
    """A 3×3, stride-1 convolution of the requested kind."""
    if kind == "Conv":
        return nn.Conv2d(in_channels, out_channels, 3, padding=1)
    if kind == "DWConv":
        return DWConv2d(in_channels, out_channels, 3)
    raise ModelConfigError(f"unknown conv kind {kind!r}; expected 'Conv' or 'DWConv'")


class ResnetBlock(nn.Module):
    """GN -> SiLU -> conv -> +temb -> GN -> SiLU -> dropout -> conv, plus a 1×1 shortcut if in != out."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        conv: ConvKind = "Conv",
        groups: int = 32,
        eps: float = 1e-5,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(groups, in_channels, eps)
        self.conv1 = make_conv3x3(conv, in_channels, out_channels)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = group_norm(groups, out_channels, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = make_conv3x3(conv, out_channels, out_channels)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = conv3x3(self.conv1, F.silu(self.norm1(x)))  # (B, Cout, H, W)
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]  # temb (B, Ct) -> (B, Cout, 1, 1)
        h = conv3x3(self.conv2, self.dropout(F.silu(self.norm2(h))))  # (B, Cout, H, W)
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class Downsample(nn.Module):
    """Stride-2 3×3 conv (diffusers ``Downsample2D``); stays a plain conv in every variant."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # not conv3x3(): its one small-map instance (the teacher's 16→8) is ~0.5% of the forward, and
        # the plain conv keeps the student (whose convs are otherwise all DWConv) bit for bit as it was
        return self.conv(x)  # (B, C, H/2, W/2)


# Nearest ×2 then a 3×3 conv: output row 2i+a reads input rows i-1, i, i (a = 0) or i, i, i+1 (a = 1)
# through kernel rows 0, 1, 2; the same for columns. _UP_OFFSET[a][kernel row] = input row - i.
_UP_OFFSET = ((-1, 0, 0), (0, 0, 1))


class Upsample(nn.Module):
    """Nearest ×2 then 3×3 conv (diffusers ``Upsample2D``); stays a plain conv in every variant.

    Speed only, CPU inference (no autograd): the 3×3 conv of the ×2 map is taken as the nine 1×1
    convs of its taps on the low-res map (one matmul, a quarter of the multiply-adds), each shifted
    and summed into the output pixels that read it. Same sums in another order (rounding-level
    differences). The tap-major weight is cached, keyed by the weight's storage and version (so
    ``load_state_dict``, ``copy_`` and optimiser steps refresh it; writes through ``.data`` do not).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self._taps: tuple[tuple, torch.Tensor] | None = None  # (weight key, (9·Cout, Cin) weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            return self._forward_taps(x)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)

    def _tap_weight(self) -> torch.Tensor:
        w = self.conv.weight
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        if self._taps is None or self._taps[0] != key:
            o, i = w.shape[:2]
            # (Cout, Cin, 3, 3) -> (3·3·Cout, Cin), rows ordered (kernel row, kernel col, out channel)
            self._taps = (key, w.detach().reshape(o * i, 9).t().reshape(9 * o, i))
        return self._taps[1]

    def _forward_taps(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        o = self.conv.out_channels
        z = (self._tap_weight() @ x.reshape(b, c, hh * ww)).view(b, 3, 3, o, hh, ww)  # every tap's 1×1 conv
        out = z.new_empty(b, o, hh, 2, ww, 2)  # (B, C, H, row parity, W, col parity)
        bias = self.conv.bias.to(z.dtype).view(1, o, 1, 1)
        for a in (0, 1):
            for e in (0, 1):
                acc = z[:, 1, 1] + bias  # the centre tap reads (i, j) for every parity
                for kr in range(3):
                    for kc in range(3):
                        if (kr, kc) != (1, 1):
                            _shift_add(acc, z[:, kr, kc], _UP_OFFSET[a][kr], _UP_OFFSET[e][kc])
                out[:, :, :, a, :, e] = acc
        return out.view(b, o, 2 * hh, 2 * ww)  # (B, C, 2H, 2W)


def _shift_add(acc: torch.Tensor, z: torch.Tensor, dy: int, dx: int) -> None:
    """acc[..., i, j] += z[..., i + dy, j + dx] where that index exists (zero padding elsewhere)."""
    h, w = acc.shape[-2:]
    acc[..., max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] += z[
        ..., max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]


# --------------------------------------------------------------------------------------------------
# Attention and feed-forward
# --------------------------------------------------------------------------------------------------


class CrossAttention(nn.Module):
    """Standard multi-head cross-attention on tokens (diffusers ``Attention`` keys: to_q/k/v, to_out.0)."""

    def __init__(self, dim: int, context_dim: int, heads: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ModelConfigError(f"cross-attention: {dim} channels not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(dropout)])

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape  # (B, N, C); context (B, M, Dc)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.heads, c // self.heads).transpose(1, 2)  # (B, h, *, C/h)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        o = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, C/h)
        o = o.transpose(1, 2).reshape(b, n, c)  # (B, N, C)
        return self.to_out[1](self.to_out[0](o))


class GEGLU(nn.Module):
    """Linear to 2×inner, then x · GELU(gate) (diffusers ``GEGLU``)."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)  # (B, N, inner) each
        return h * F.gelu(gate)


class GEGLUFeedForward(nn.Module):
    """The teacher's FFN: GEGLU(C -> 4C) -> dropout -> Linear(4C -> C); keys net.0.proj, net.2."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x  # (B, N, C)


class ConvLayer(nn.Module):
    """A bare conv (+ optional SiLU) under the key ``conv``, as SANA's ``ConvLayer`` without norm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int, bias: bool, act: bool):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=bias
        )
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class MixFFN(nn.Module):
    """Mix-FFN (SANA ``GLUMBConv``): 1×1 C->2h +SiLU, depthwise 3×3, split, x·SiLU(gate), 1×1 h->C."""

    def __init__(self, dim: int, ratio: float = 2.5) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.inverted_conv = ConvLayer(dim, hidden * 2, 1, groups=1, bias=True, act=True)
        self.depth_conv = ConvLayer(hidden * 2, hidden * 2, 3, groups=hidden * 2, bias=True, act=False)
        self.point_conv = ConvLayer(hidden, dim, 1, groups=1, bias=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depth_conv(self.inverted_conv(x))  # (B, 2h, H, W)
        h, gate = h.chunk(2, dim=1)  # (B, h, H, W) each
        return self.point_conv(h * F.silu(gate))  # (B, C, H, W)


# --------------------------------------------------------------------------------------------------
# Transformer block (Eq. 3) and its spatial wrapper
# --------------------------------------------------------------------------------------------------


def _to_map(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    b, n, c = x.shape
    # (B, N, C) -> (B, C, H, W); a view, channels-last when x is contiguous
    return x.reshape(b, *hw, c).permute(0, 3, 1, 2)


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)


class TransformerBlock(nn.Module):
    """Eq. 3 with switchable attn1 / attn2 / ff; LayerNorms on tokens, λ and Mix-FFN on maps."""

    def __init__(
        self,
        dim: int,
        context_dim: int,
        grid_size: int,
        num_tokens: int,
        self_attention: SelfAttention = "LocalLambda",
        cross_attention: CrossAttn = "InteractiveLambda",
        ffn: FFNKind = "MixFFN",
        heads: int = 8,
        lambda_r: int = 15,
        mix_ffn_ratio: float = 2.5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if self_attention == "GLA":
            self.attn1: nn.Module = GatedLinearAttention(dim, num_heads=heads)
        elif self_attention == "LocalLambda":
            self.attn1 = LocalLambda(dim, heads=heads, r=lambda_r)
        else:
            raise ModelConfigError(f"unknown self-attention {self_attention!r}; expected 'GLA' or 'LocalLambda'")
        self.norm2 = nn.LayerNorm(dim)
        if cross_attention == "CA":
            self.attn2: nn.Module = CrossAttention(dim, context_dim, heads=heads)
        elif cross_attention == "InteractiveLambda":
            self.attn2 = InteractiveLambda(dim, context_dim, num_tokens, grid_size, heads=heads)
        else:
            raise ModelConfigError(f"unknown cross-attention {cross_attention!r}; expected 'CA' or 'InteractiveLambda'")
        self.norm3 = nn.LayerNorm(dim)
        if ffn == "FFN":
            self.ff: nn.Module = GEGLUFeedForward(dim)
        elif ffn == "MixFFN":
            self.ff = MixFFN(dim, ratio=mix_ffn_ratio)
        else:
            raise ModelConfigError(f"unknown FFN {ffn!r}; expected 'FFN' or 'MixFFN'")

    def forward(self, x: torch.Tensor, context: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        # x (B, N, C) tokens in raster order; context (B, m, Dc)
        h = self.norm1(x)
        if isinstance(self.attn1, LocalLambda):
            h = _to_tokens(self.attn1(_to_map(h, hw).contiguous()))
        else:
            h = self.attn1(h)
        x = x + h  # X1
        h = self.norm2(x)
        if isinstance(self.attn2, InteractiveLambda):
            h = _to_tokens(self.attn2(_to_map(h, hw).contiguous(), context))
        else:
            h = self.attn2(h, context)
        x = x + h  # X2
        h = self.norm3(x)
        if isinstance(self.ff, MixFFN):
            h = _to_tokens(self.ff(_to_map(h, hw)))
        else:
            h = self.ff(h)
        return x + h  # X_out, (B, N, C)


class SpatialTransformer(nn.Module):
    """GN -> 1×1 proj_in -> transformer blocks on tokens -> 1×1 proj_out -> + input (``Transformer2DModel``)."""

    def __init__(self, dim: int, groups: int, depth: int = 1, **block_kwargs: object) -> None:
        super().__init__()
        self.norm = group_norm(groups, dim, eps=1e-6)
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(dim, **block_kwargs) for _ in range(depth)]  # type: ignore[arg-type]
        )
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape  # (B, C, H, W)
        h = _to_tokens(self.proj_in(self.norm(x))).contiguous()  # (B, N, C)
        for block in self.transformer_blocks:
            h = block(h, context, (hh, ww))
        return self.proj_out(_to_map(h, (hh, ww)).contiguous()) + x  # (B, C, H, W)
