"""MAT, the Mask-Aware Transformer generator (Li et al., CVPR 2022, "MAT: Mask-Aware Transformer for
Large Hole Image Inpainting"), written here from the paper (§3, Fig. 2) and checked against the
official implementation (github.com/fenglinglwb/MAT, ``networks/mat.py`` + ``networks/basic_module.py``
on StyleGAN2-ADA's ``torch_utils``): same module tree, so a converted official ``G_ema`` state dict
(``moebius.eval.mat_convert``) loads with ``strict=True``, and the same arithmetic, so the same weights
give the same images (``tests/eval/test_mat.py`` pins outputs of the official code).

Two stages (paper §3.1-3.3):
1. ``first_stage``: partial convolutions (mask-aware, Liu et al. 2018) bring the masked image down to
   a 64x64 token grid; five transformer levels (64 → 32 → 16 → 32 → 64 tokens, depths 2-3-4-3-2,
   windows 8-16-16-16-8) with *multi-head contextual attention*: keys of invalid tokens get -100
   before the softmax, and a window with any valid token makes all its tokens valid (the dynamic
   mask update, §3.3). Blocks replace LayerNorm + residual by a fused concat ("fuse") and an MLP
   with leaky ReLU (§3.2, "adjusted transformer block"). At the 16x16 bottleneck the style
   manipulation module (§3.4) mixes the tokens with a noise-derived map under a random Bernoulli(½)
   mask, then StyleGAN2 decoder blocks go back up to the image, modulated by [global, w] styles.
2. ``enc`` / ``dec``: a StyleGAN2-style convolutional refinement U-Net on [mask − ½, stage-1
   composite, masked image], with the same style manipulation at 16x16.
Both stages composite with the known pixels: ``out · (1 − m) + image · m``.

Conventions (official ``generate_image.py``): images in [-1, 1]; **MAT masks are 1 = known, 0 =
hole** (the harness's are 1 = hole: ``MATInpainter`` flips them); z ~ N(0, I) of size ``z_dim``;
truncation ψ = 1; ``noise_mode='const'`` (the stored per-layer noise maps).

The StyleGAN2 resampling operations (FIR filter [1,3,3,1], up/down-sampling convolutions) are written
here in plain PyTorch; the official code calls custom CUDA kernels with pure-PyTorch reference
fallbacks that compute the same values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from moebius.errors import EvalError, ModelConfigError, ModelInputError

# ---------------------------------------------------------------------------------------------
# Architecture constants of the official generator (not widths: they fix the module tree)
# ---------------------------------------------------------------------------------------------

TOKEN_RES = 64  # first stage: partial convolutions bring any input to a 64x64 token grid
DEPTHS = (2, 3, 4, 3, 2)  # transformer blocks per level
RATIOS = (1, 0.5, 0.5, 2, 2)  # token-grid scaling entering each level (64, 32, 16, 32, 64)
WINDOWS = (8, 16, 16, 16, 8)
HEADS = 6
MLP_RATIO = 2  # BasicLayer's default mlp_ratio in the official code (not Swin's 4)
SQUARE = 16  # the style manipulation's noise map is 16x16 in both stages
FIR = (1.0, 3.0, 3.0, 1.0)  # StyleGAN2's resampling filter
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
MASK_PENALTY = -100.0  # attention logit added for an invalid key (and for another shifted-window region)


@dataclass(frozen=True)
class MATConfig:
    """Widths of a MAT generator; the official checkpoints are ``MATConfig()`` (512 px)."""

    resolution: int = 512  # official models: 512 (CelebA-HQ, FFHQ, Places); 256 (CelebA-HQ-256)
    dim: int = 180  # first-stage token width (hard-coded 180 in the official FirstStage)
    channel_base: int = 32768  # second stage: channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 512
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8

    def nf(self, res: int) -> int:
        """Second-stage channels at resolution ``res`` (the official table {512: 64, ..., 64 and below: 512})."""
        return min(self.channel_base // res, self.channel_max)

    @property
    def log2_res(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        return 2 * self.log2_res - 6  # styles the second-stage decoder reads (12 at 512 px)

    def check(self) -> MATConfig:
        r = self.resolution
        if r < 2 * TOKEN_RES or r & (r - 1):
            raise ModelConfigError(f"MAT resolution must be a power of two >= {2 * TOKEN_RES}, got {r}")
        if self.dim < HEADS or self.dim % HEADS:
            raise ModelConfigError(f"MAT dim must be a positive multiple of {HEADS} heads, got {self.dim}")
        if self.nf(r) < 1 or min(self.z_dim, self.w_dim, self.mapping_layers) < 1:
            raise ModelConfigError(f"MAT widths must be positive: {asdict(self)}")
        return self


PAPER = MATConfig()
# Stand-in for smoke scale: every width reduced (dim 180 → 12, second stage /16, z and w 512 → 32) and
# the smallest resolution the architecture has, 128 px: 0.24 M parameters.
# DEVIATION (official checkpoints, 512 px): the module tree lacks the 256 and 512 levels of the second
# stage (as MAT's own 256-px model lacks the 512 one), so its keys are a subset of the official files'.
# Why: the smoke benchmarks are 32-64 px, and the resize to 512 made MAT the slowest baseline of the
# smoke DAG (5.0 s per 8 images on one CPU thread; 1.5 s at 128). Cost: the full 512-px key layout is
# no longer loaded at smoke scale; the rehearsal loads it (official-format files, `config/rehearsal.yaml`)
# and tests/eval/test_mat.py checks it against the official code.
STANDIN = MATConfig(resolution=128, dim=12, channel_base=2048, channel_max=32, z_dim=32, w_dim=32)


# ---------------------------------------------------------------------------------------------
# Resampling and activation (StyleGAN2's upfirdn2d / conv2d_resample / bias_act, as arithmetic)
# ---------------------------------------------------------------------------------------------


def fir_filter() -> torch.Tensor:
    """The 4x4 separable low-pass filter [1,3,3,1]ᵀ[1,3,3,1], normalised to sum 1."""
    f = torch.tensor(FIR)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0),
            gain: float = 1.0) -> torch.Tensor:
    """Zero-insertion upsampling by ``up``, padding (x0, x1, y0, y1; negative crops), 2-D convolution
    with ``f·gain``, keeping every ``down``-th sample. (B,C,H,W) → (B,C,H',W')."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)  # (B,C,H·up,W·up)
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    # A true convolution (flipped kernel); conv2d correlates. The filter is symmetric anyway.
    kernel = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)  # (C,1,fh,fw)
    x = F.conv2d(x, kernel, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def conv_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, padding: int = 0,
                  groups: int = 1) -> torch.Tensor:
    """Convolution with optional 2x up/down-sampling through the FIR filter ``f`` (StyleGAN2 §B).

    Down: blur (the filter's padding plus ``padding``) then a stride-``down`` convolution. Up: a
    transposed convolution of stride ``up`` (kernel flipped: the transposed op of the correlation)
    then a blur with gain up², cropped so that H → H·up.
    """
    out_ch, in_per_group, kh, kw = w.shape
    fw = f.shape[1]
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if up == 1 and down > 1 and kh > 1:
        p0, p1 = padding + (fw - down + 1) // 2, padding + (fw - down) // 2
        x = upfirdn(x, f, pad=(p0, p1, p0, p1))
        return F.conv2d(x, w, stride=down, groups=groups)
    if down == 1 and up > 1 and kh > 1:
        p0 = padding + (fw + up - 1) // 2 - (kw - 1)
        p1 = padding + (fw - up) // 2 - (kw - up)
        t = max(min(-p0, -p1), 0)  # padding the transposed convolution can absorb
        # (out, in/g, k, k) → (in, out/g, k, k): the weight layout conv_transpose2d expects per group.
        wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw).flip([2, 3])
        x = F.conv_transpose2d(x, wt, stride=up, padding=t, groups=groups)
        return upfirdn(x, f, pad=(p0 + t, p1 + t, p0 + t, p1 + t), gain=up * up)
    raise ModelConfigError(f"conv_resample: unsupported kernel {kh}x{kw} with up={up}, down={down}")


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str, gain: float | None = None, dim: int = 1) -> torch.Tensor:
    """``act(x + b)·gain``; ``b`` along ``dim``; gain defaults to √2 for lrelu (StyleGAN2's equalised gain)."""
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    if act == "lrelu":
        return F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN if gain is None else gain)
    if act == "linear":
        return x if gain is None or gain == 1 else x * gain
    raise ModelConfigError(f"unknown activation {act!r}")


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) → (B,H·W,C)."""
    return x.flatten(2).transpose(1, 2)


def to_feature(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,H·W,C) → (B,C,H,W)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *size)


# ---------------------------------------------------------------------------------------------
# Equalised-learning-rate layers (StyleGAN2: weights ~ N(0,1), scaled at run time)
# ---------------------------------------------------------------------------------------------


class FC(nn.Module):
    """Fully connected layer with the weight scaled by lr_multiplier/√in at run time."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1.0,
                 bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.bias_gain if self.bias_gain != 1 else self.bias
        x = x.matmul((self.weight * self.weight_gain).t())  # (..., out)
        return bias_act(x, b, self.activation, dim=x.ndim - 1)


class Conv(nn.Module):
    """Convolution (odd kernel, 'same' padding) with optional 2x up/down-sampling, bias and activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: str = "linear",
                 up: int = 1, down: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", fir_filter())
        self.activation, self.up, self.down, self.padding = activation, up, down, kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = conv_resample(x, self.weight * self.weight_gain, self.resample_filter, self.up, self.down, self.padding)
        return bias_act(x, self.bias, self.activation)


class PartialConv(nn.Module):
    """Mask-aware convolution (paper §3.1; Liu et al. 2018): the output at a position is rescaled by
    (window size / valid inputs in the window) and zeroed where the window holds no valid input; the
    mask becomes 1 wherever the window held any valid input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: str = "linear",
                 up: int = 1, down: int = 1):
        super().__init__()
        self.conv = Conv(in_channels, out_channels, kernel_size, activation, up, down)
        self.kernel_size, self.stride = kernel_size, down

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is None:
            return self.conv(x), None
        with torch.no_grad():
            ones = torch.ones(1, 1, self.kernel_size, self.kernel_size, dtype=mask.dtype, device=mask.device)
            valid = F.conv2d(mask, ones, stride=self.stride, padding=self.kernel_size // 2)  # (B,1,H',W')
            ratio = self.kernel_size**2 / (valid + 1e-8)
            valid = valid.clamp(0, 1)
            ratio = ratio * valid
        # As the official layer: bias and activation come before the rescaling.
        return self.conv(x) * ratio, valid


class ModulatedConv(nn.Module):
    """StyleGAN2 modulated convolution: per-sample weights scaled by an affine map of the style, then
    (optionally) demodulated to unit norm; run as one grouped convolution over the batch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 up: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("resample_filter", fir_filter())
        self.affine = FC(style_dim, in_channels, bias_init=1.0)
        self.demodulate, self.up, self.padding = demodulate, up, kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.affine(style).view(b, 1, c, 1, 1)
        weight = self.weight * self.weight_gain * s  # (B,out,in,k,k)
        if self.demodulate:
            weight = weight * (weight.pow(2).sum(dim=[2, 3, 4]) + 1e-8).rsqrt().view(b, -1, 1, 1, 1)
        out_ch, k = weight.shape[1], weight.shape[-1]
        x = conv_resample(x.reshape(1, b * c, h, w), weight.reshape(b * out_ch, c, k, k), self.resample_filter,
                          up=self.up, padding=self.padding, groups=b)
        return x.reshape(b, out_ch, *x.shape[2:])


class StyleConv(nn.Module):
    """Modulated convolution + (stored) noise + bias + leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, demodulate: bool = True):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, kernel_size, style_dim, demodulate, up)
        self.use_noise = use_noise
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        x = self.conv(x, style)
        if self.use_noise and noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return bias_act(x, self.bias, "lrelu")


class ToRGB(nn.Module):
    """1x1 modulated convolution (no demodulation) to RGB, added to the upsampled previous RGB."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", fir_filter())

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = bias_act(self.conv(x, style), self.bias, "linear")
        if skip is not None:
            if skip.shape != out.shape:  # StyleGAN2's upsample2d: up 2, pad (2, 1), gain 4
                skip = upfirdn(skip, self.resample_filter, up=2, pad=(2, 1, 2, 1), gain=4.0)
            out = out + skip
        return out


class MappingNet(nn.Module):
    """z → w: 2nd-moment normalisation, then ``layers`` leaky-ReLU FCs at lr multiplier 0.01; w is
    broadcast to ``num_ws`` copies and optionally truncated towards ``w_avg``."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, layers: int = 8, lr_multiplier: float = 0.01):
        super().__init__()
        self.num_ws, self.layers = num_ws, layers
        dims = [z_dim] + [w_dim] * layers
        for i in range(layers):
            setattr(self, f"fc{i}", FC(dims[i], dims[i + 1], "lrelu", lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        x = z.float() * (z.float().square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.layers):
            x = getattr(self, f"fc{i}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (B,num_ws,w_dim)
        if truncation_psi != 1:
            ws = self.w_avg.lerp(ws, truncation_psi)
        return ws


# ---------------------------------------------------------------------------------------------
# First stage: mask-aware transformer (paper §3.2-3.3)
# ---------------------------------------------------------------------------------------------


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B,H,W,C) → (B·nW, ws·ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_merge(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B·nW, ws·ws, C) → (B,H,W,C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """Swin's mask for a cyclically shifted grid: (nW, N, N), -100 between tokens of different regions."""
    region = torch.zeros(1, h, w, 1)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, (hs, wsl) in enumerate((a, b) for a in cuts for b in cuts):
        region[:, hs, wsl, :] = i
    ids = window_partition(region, ws).squeeze(-1)  # (nW, N)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return torch.where(diff != 0, torch.tensor(MASK_PENALTY), torch.tensor(0.0))


class WindowAttention(nn.Module):
    """Multi-head contextual attention (§3.3): q and k from L2-normalised tokens, v from the tokens;
    invalid keys get -100; a window with any valid token becomes all valid."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q, self.k, self.v, self.proj = FC(dim, dim), FC(dim, dim), FC(dim, dim), FC(dim, dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None, shift_mask: torch.Tensor | None):
        bw, n, c = x.shape  # (B·nW, N, C)
        hd = c // self.heads
        xn = F.normalize(x, p=2.0, dim=-1)
        q = self.q(xn).reshape(bw, n, self.heads, hd).permute(0, 2, 1, 3)  # (B·nW,h,N,hd)
        k = self.k(xn).reshape(bw, n, self.heads, hd).permute(0, 2, 3, 1)  # (B·nW,h,hd,N)
        v = self.v(x).reshape(bw, n, self.heads, hd).permute(0, 2, 1, 3)  # (B·nW,h,N,hd)
        attn = (q @ k) * self.scale  # (B·nW,h,N,N)
        if shift_mask is not None:
            nw = shift_mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.heads, n, n) + shift_mask[None, :, None]).view(bw, self.heads, n, n)
        if valid is not None:
            key_valid = valid.squeeze(-1)[:, None, None, :]  # (B·nW,1,1,N)
            attn = attn + torch.where(key_valid == 0, MASK_PENALTY, torch.where(key_valid == 1, 0.0, key_valid))
            with torch.no_grad():  # the dynamic mask update: any valid token validates its window
                valid = valid.sum(dim=1, keepdim=True).clamp(0, 1).repeat(1, n, 1)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out), valid


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = FC(dim, hidden, "lrelu")
        self.fc2 = FC(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class TransformerBlock(nn.Module):
    """Adjusted transformer block (§3.2): (shifted) window attention, then fuse([input, attention]) and
    an MLP — no layer norm and no residual around the attention or the MLP."""

    def __init__(self, dim: int, input_resolution: int, heads: int, window: int, shift: int):
        super().__init__()
        if input_resolution <= window:  # the window covers the grid: no partition, no shift
            window, shift = input_resolution, 0
        self.window, self.shift = window, shift
        self.attn = WindowAttention(dim, heads)
        self.fuse = FC(2 * dim, dim, "lrelu")
        self.mlp = Mlp(dim, int(dim * MLP_RATIO))
        # Stored in the official state dict; recomputed for the actual grid in forward, as the official
        # forward does (its cached-mask shortcut never fires: it compares a list with a tuple).
        self.register_buffer("attn_mask", shifted_window_mask(input_resolution, input_resolution, window, shift)
                             if shift else None)

    def forward(self, x: torch.Tensor, size: tuple[int, int], valid: torch.Tensor | None):
        h, w = size
        b, n, c = x.shape
        shortcut = x
        x = x.view(b, h, w, c)
        if valid is not None:
            valid = valid.view(b, h, w, 1)
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), dims=(1, 2))
            if valid is not None:
                valid = torch.roll(valid, (-self.shift, -self.shift), dims=(1, 2))
        xw = window_partition(x, self.window)  # (B·nW, N, C)
        vw = window_partition(valid, self.window) if valid is not None else None
        shift_mask = shifted_window_mask(h, w, self.window, self.shift).to(x) if self.shift else None
        xw, vw = self.attn(xw, vw, shift_mask)
        x = window_merge(xw, self.window, h, w)
        if vw is not None:
            valid = window_merge(vw, self.window, h, w)
        if self.shift:
            x = torch.roll(x, (self.shift, self.shift), dims=(1, 2))
            if valid is not None:
                valid = torch.roll(valid, (self.shift, self.shift), dims=(1, 2))
        x = self.fuse(torch.cat([shortcut, x.reshape(b, n, c)], dim=-1))
        return self.mlp(x), (valid.reshape(b, n, 1) if valid is not None else None)


class Resample(nn.Module):
    """Token-grid down/up-sampling by a 3x3 partial convolution (PatchMerging / PatchUpsampling)."""

    def __init__(self, dim: int, up: int = 1, down: int = 1):
        super().__init__()
        self.conv = PartialConv(dim, dim, 3, "lrelu", up=up, down=down)
        self.factor = up / down

    def forward(self, x: torch.Tensor, size: tuple[int, int], valid: torch.Tensor | None):
        x, valid = self.conv(to_feature(x, size), to_feature(valid, size) if valid is not None else None)
        size = (int(size[0] * self.factor), int(size[1] * self.factor))
        return to_tokens(x), size, (to_tokens(valid) if valid is not None else None)


class TransformerLevel(nn.Module):
    """Optional resampling, ``depth`` blocks (every other one shifted by half a window), a 3x3
    partial convolution, and a residual around blocks + convolution (BasicLayer)."""

    def __init__(self, dim: int, resolution: int, depth: int, heads: int, window: int, downsample: Resample | None):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2) for i in range(depth)
        )
        self.conv = PartialConv(dim, dim, 3, "lrelu")

    def forward(self, x: torch.Tensor, size: tuple[int, int], valid: torch.Tensor | None):
        if self.downsample is not None:
            x, size, valid = self.downsample(x, size, valid)
        identity = x
        for block in self.blocks:
            x, valid = block(x, size, valid)
        x, valid = self.conv(to_feature(x, size), to_feature(valid, size) if valid is not None else None)
        return to_tokens(x) + identity, size, (to_tokens(valid) if valid is not None else None)


class DecStyleBlock(nn.Module):
    """StyleGAN2 up-block: modulated up-conv, + encoder skip, modulated conv, ToRGB (skip-summed)."""

    def __init__(self, resolution: int, in_channels: int, out_channels: int, style_dim: int, use_noise: bool,
                 img_channels: int = 3):
        super().__init__()
        self.conv0 = StyleConv(in_channels, out_channels, style_dim, resolution, up=2, use_noise=use_noise)
        self.conv1 = StyleConv(out_channels, out_channels, style_dim, resolution, use_noise=use_noise)
        self.toRGB = ToRGB(out_channels, img_channels, style_dim)

    def forward(self, x, img, style, skip, noise_mode="const"):
        x = self.conv0(x, style, noise_mode) + skip
        x = self.conv1(x, style, noise_mode)
        return x, self.toRGB(x, style, skip=img)


def style_mix(x: torch.Tensor, noise: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Style manipulation (§3.4): keep each feature with probability ½, else replace it by the noise map.

    ``keep`` is the official ``F.dropout(0.5·1, training=True)`` — 1 (kept, 0.5 / 0.5) or 0 — which
    the official code applies at inference too; here it is drawn by the caller from a seeded generator.
    """
    return x * keep + noise * (1 - keep)


class FirstStage(nn.Module):
    """Coarse stage: partial convs to 64x64 tokens, the transformer U (64→16→64), StyleGAN2 decoder."""

    def __init__(self, cfg: MATConfig, img_channels: int = 3):
        super().__init__()
        dim, res = cfg.dim, TOKEN_RES
        self.conv_first = PartialConv(img_channels + 1, dim, 3, "lrelu")
        down_times = int(math.log2(cfg.resolution // TOKEN_RES))
        self.enc_conv = nn.ModuleList(PartialConv(dim, dim, 3, "lrelu", down=2) for _ in range(down_times))
        self.tran = nn.ModuleList()
        for depth, ratio, window in zip(DEPTHS, RATIOS, WINDOWS):
            res = int(res * ratio)
            resample = Resample(dim, down=2) if ratio < 1 else Resample(dim, up=2) if ratio > 1 else None
            self.tran.append(TransformerLevel(dim, res, depth, HEADS, window, resample))
        # Global style: four stride-2 convs 16 → 1 and a mean, as in the official down_conv.
        self.down_conv = nn.Sequential(*[Conv(dim, dim, 3, "lrelu", down=2) for _ in range(int(math.log2(SQUARE)))],
                                       nn.AdaptiveAvgPool2d((1, 1)))
        self.to_style = FC(dim, 2 * dim, "lrelu")
        self.ws_style = FC(cfg.w_dim, dim, "lrelu")
        self.to_square = FC(dim, SQUARE * SQUARE, "lrelu")
        self.dec_conv = nn.ModuleList()
        for _ in range(down_times):
            res *= 2
            self.dec_conv.append(DecStyleBlock(res, dim, dim, 3 * dim, use_noise=False, img_channels=img_channels))

    def forward(self, images, known, ws, keep, noise_mode="const"):
        x = torch.cat([known - 0.5, images * known], dim=1)  # (B,4,R,R)
        x, valid = self.conv_first(x, known)
        skips = [x]
        for i, block in enumerate(self.enc_conv):  # R → 64
            x, valid = block(x, valid)
            if i != len(self.enc_conv) - 1:
                skips.append(x)
        size = (x.shape[2], x.shape[3])
        x, valid = to_tokens(x), to_tokens(valid)  # (B,4096,dim), (B,4096,1)
        mid = len(self.tran) // 2
        for i, level in enumerate(self.tran):
            if i < mid:  # 64 → 32 → 16 with the mask (contextual attention)
                x, size, valid = level(x, size, valid)
                skips.append(x)
            elif i > mid:  # 16 → 32 → 64, all tokens valid by now; token skips from the way down
                x, size, _ = level(x, size, None)
                x = x + skips[mid - i]
            else:
                x, size, _ = level(x, size, None)
                w = self.ws_style(ws[:, -1])  # (B,dim)
                noise = self.to_square(w).unsqueeze(1)  # (B,1,256)
                noise = F.interpolate(noise, size=x.shape[1], mode="linear", align_corners=False)
                x = style_mix(x, noise.squeeze(1).unsqueeze(-1), keep)  # (B,256,dim)
                gs = self.to_style(self.down_conv(to_feature(x, size)).flatten(start_dim=1))  # (B,2·dim)
                style = torch.cat([gs, w], dim=1)  # (B,3·dim)
        x = to_feature(x, size).contiguous()
        img = None
        for i, block in enumerate(self.dec_conv):  # 64 → R
            x, img = block(x, img, style, skips[len(self.dec_conv) - i - 1], noise_mode)
        return img * (1 - known) + images * known


# ---------------------------------------------------------------------------------------------
# Second stage: convolutional refinement U-Net (StyleGAN2 decoder)
# ---------------------------------------------------------------------------------------------


class EncBlock(nn.Module):
    """Two convs: 1x1 from the input (top level) or a stride-2 3x3 (lower levels), then a 3x3."""

    def __init__(self, in_channels: int, out_channels: int, first: bool):
        super().__init__()
        self.conv0 = Conv(in_channels, out_channels, 1 if first else 3, "lrelu", down=1 if first else 2)
        self.conv1 = Conv(out_channels, out_channels, 3, "lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class Encoder(nn.Module):
    """Features at R, R/2, ..., 16, keyed by log2(resolution)."""

    def __init__(self, cfg: MATConfig, img_channels: int = 3):
        super().__init__()
        self.levels = list(range(cfg.log2_res, 3, -1))
        for r in self.levels:
            first = r == cfg.log2_res
            block = EncBlock(img_channels * 2 + 1 if first else cfg.nf(2 ** (r + 1)), cfg.nf(2**r), first)
            setattr(self, f"EncConv_Block_{2**r}x{2**r}", block)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        out = {}
        for r in self.levels:
            x = getattr(self, f"EncConv_Block_{2**r}x{2**r}")(x)
            out[r] = x
        return out


class ToStyle(nn.Module):
    """Global style code of the second stage: three stride-2 convs (16 → 2), mean, FC."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(*[Conv(in_channels, in_channels, 3, "lrelu", down=2) for _ in range(3)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = FC(in_channels, out_channels, "lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(start_dim=1))


class DecFirst(nn.Module):
    """16x16: conv + encoder feature, modulated conv, ToRGB (DecBlockFirstV2)."""

    def __init__(self, channels: int, style_dim: int, img_channels: int = 3):
        super().__init__()
        self.conv0 = Conv(channels, channels, 3, "lrelu")
        self.conv1 = StyleConv(channels, channels, style_dim, SQUARE)
        self.toRGB = ToRGB(channels, img_channels, style_dim)

    def forward(self, x, ws, gs, feats, noise_mode="const"):
        x = self.conv0(x) + feats[4]
        x = self.conv1(x, torch.cat([ws[:, 0], gs], dim=1), noise_mode)
        return x, self.toRGB(x, torch.cat([ws[:, 1], gs], dim=1))


class DecBlock(nn.Module):
    """Resolution 2^r (r ≥ 5): modulated up-conv + encoder feature, modulated conv, ToRGB; styles
    ws[2r−9], ws[2r−8], ws[2r−7] each concatenated with the global style."""

    def __init__(self, r: int, in_channels: int, out_channels: int, style_dim: int, img_channels: int = 3):
        super().__init__()
        self.r = r
        self.conv0 = StyleConv(in_channels, out_channels, style_dim, 2**r, up=2)
        self.conv1 = StyleConv(out_channels, out_channels, style_dim, 2**r)
        self.toRGB = ToRGB(out_channels, img_channels, style_dim)

    def forward(self, x, img, ws, gs, feats, noise_mode="const"):
        r = self.r
        x = self.conv0(x, torch.cat([ws[:, 2 * r - 9], gs], dim=1), noise_mode) + feats[r]
        x = self.conv1(x, torch.cat([ws[:, 2 * r - 8], gs], dim=1), noise_mode)
        return x, self.toRGB(x, torch.cat([ws[:, 2 * r - 7], gs], dim=1), skip=img)


class Decoder(nn.Module):
    def __init__(self, cfg: MATConfig, style_dim: int, img_channels: int = 3):
        super().__init__()
        self.Dec_16x16 = DecFirst(cfg.nf(16), style_dim, img_channels)
        self.top = cfg.log2_res
        for r in range(5, self.top + 1):
            setattr(self, f"Dec_{2**r}x{2**r}", DecBlock(r, cfg.nf(2 ** (r - 1)), cfg.nf(2**r), style_dim, img_channels))

    def forward(self, x, ws, gs, feats, noise_mode="const"):
        x, img = self.Dec_16x16(x, ws, gs, feats, noise_mode)
        for r in range(5, self.top + 1):
            x, img = getattr(self, f"Dec_{2**r}x{2**r}")(x, img, ws, gs, feats, noise_mode)
        return img


class SynthesisNet(nn.Module):
    def __init__(self, cfg: MATConfig, img_channels: int = 3):
        super().__init__()
        self.first_stage = FirstStage(cfg, img_channels)
        self.enc = Encoder(cfg, img_channels)
        self.to_square = FC(cfg.w_dim, SQUARE * SQUARE, "lrelu")
        self.to_style = ToStyle(cfg.nf(16), cfg.nf(4) * 2)
        self.dec = Decoder(cfg, cfg.w_dim + cfg.nf(4) * 2, img_channels)

    def forward(self, images, known, ws, keep1, keep2, noise_mode="const"):
        stage1 = self.first_stage(images, known, ws, keep1, noise_mode)
        x = images * known + stage1 * (1 - known)
        feats = self.enc(torch.cat([known - 0.5, x, images * known], dim=1))  # 7 input channels
        noise = self.to_square(ws[:, 0]).view(-1, 1, SQUARE, SQUARE)
        f16 = feats[4]
        noise = F.interpolate(noise, size=f16.shape[-2:], mode="bilinear", align_corners=False)
        feats[4] = f16 = style_mix(f16, noise, keep2)  # (B,nf(16),16,16)
        img = self.dec(f16, ws, self.to_style(f16), feats, noise_mode)
        return img * (1 - known) + images * known, stage1


class MATGenerator(nn.Module):
    """MAT's generator (G_ema of the official checkpoints): ``mapping`` (z → w) and ``synthesis``."""

    def __init__(self, cfg: MATConfig = PAPER, img_channels: int = 3):
        super().__init__()
        self.cfg = cfg.check()
        self.synthesis = SynthesisNet(cfg, img_channels)
        self.mapping = MappingNet(cfg.z_dim, cfg.w_dim, cfg.num_ws, cfg.mapping_layers)

    def keep_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Per-image shapes of the two style-manipulation keep masks (stage 1 tokens, stage 2 features)."""
        return (SQUARE * SQUARE, self.cfg.dim), (self.cfg.nf(SQUARE), SQUARE, SQUARE)

    def forward(
        self,
        images: torch.Tensor,
        known: torch.Tensor,
        z: torch.Tensor,
        keep1: torch.Tensor,
        keep2: torch.Tensor,
        noise_mode: Literal["const", "none"] = "const",
        truncation_psi: float = 1.0,
        return_stage1: bool = False,
    ):
        """images (B,3,R,R) in [-1,1]; known (B,1,R,R), **1 = known, 0 = hole**; z (B,z_dim); keep1 /
        keep2 (B, *keep_shapes()) in {0,1} → composited images (B,3,R,R) (and the stage-1 output)."""
        r = self.cfg.resolution
        b = images.shape[0]
        if images.ndim != 4 or images.shape[1:] != (3, r, r) or known.shape != (b, 1, r, r):
            raise ModelInputError(f"MAT at {r} px takes images (B,3,{r},{r}) and masks (B,1,{r},{r}), got "
                                  f"{tuple(images.shape)} and {tuple(known.shape)}")
        s1, s2 = self.keep_shapes()
        if z.shape != (b, self.cfg.z_dim) or keep1.shape != (b, *s1) or keep2.shape != (b, *s2):
            raise ModelInputError(f"MAT: z {tuple(z.shape)}, keep1 {tuple(keep1.shape)}, keep2 {tuple(keep2.shape)} "
                                  f"do not fit batch {b}: need ({b},{self.cfg.z_dim}), ({b},{s1}), ({b},{s2})")
        if noise_mode not in ("const", "none"):
            raise ModelInputError(f"MAT noise_mode must be 'const' or 'none', got {noise_mode!r}")
        ws = self.mapping(z, truncation_psi)
        img, stage1 = self.synthesis(images, known, ws, keep1.to(images), keep2.to(images), noise_mode)
        return (img, stage1) if return_stage1 else img


def draw_inputs(model: MATGenerator, generators: list[torch.Generator]) -> tuple[torch.Tensor, ...]:
    """z, keep1, keep2 for a batch, row i drawn from ``generators[i]`` only (in that order, on the CPU):
    the result of an image does not depend on its batch."""
    s1, s2 = model.keep_shapes()
    zs, k1, k2 = [], [], []
    for g in generators:
        zs.append(torch.randn(model.cfg.z_dim, generator=g))
        k1.append((torch.rand(s1, generator=g) < 0.5).float())  # Bernoulli(½): dropout p = 0.5 keeps half
        k2.append((torch.rand(s2, generator=g) < 0.5).float())
    return torch.stack(zs), torch.stack(k1), torch.stack(k2)


# ---------------------------------------------------------------------------------------------
# State dicts: the configuration they imply, and deterministic fills (stand-ins, pinned tests)
# ---------------------------------------------------------------------------------------------


def config_from_state_dict(state: dict[str, torch.Tensor]) -> MATConfig:
    """The ``MATConfig`` whose generator has these tensor shapes (raises ModelConfigError if none does)."""
    try:
        decs = [int(k.split(".")[2].split("_")[1].split("x")[0]) for k in state
                if k.startswith("synthesis.dec.Dec_") and k.endswith(".toRGB.bias")]
        resolution = max(decs)
        dim = state["synthesis.first_stage.conv_first.conv.weight"].shape[0]
        top = state[f"synthesis.enc.EncConv_Block_{resolution}x{resolution}.conv0.weight"].shape[0]
        cmax = state["synthesis.enc.EncConv_Block_16x16.conv0.weight"].shape[0]
        z_dim = state["mapping.fc0.weight"].shape[1]
        w_dim = state["mapping.fc0.weight"].shape[0]
        layers = sum(1 for k in state if k.startswith("mapping.fc") and k.endswith(".weight"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ModelConfigError(f"not a MAT generator state dict (cannot read {exc})") from None
    return MATConfig(resolution=resolution, dim=dim, channel_base=top * resolution, channel_max=cmax,
                     z_dim=z_dim, w_dim=w_dim, mapping_layers=layers).check()


_COMPUTED_BUFFERS = ("resample_filter", "attn_mask", "w_avg")  # constants of the architecture (w_avg: 0)


def deterministic_state(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` whose every learned tensor (and stored noise map) is drawn from a
    generator seeded by (seed, key): the same values for the same key and shape in any module tree
    that has it — ours or the official one. Biases, noise strengths and affine offsets at 0.1 scale."""
    import zlib

    out = {}
    for key, t in model.state_dict().items():
        if key.rsplit(".", 1)[-1] in _COMPUTED_BUFFERS:
            out[key] = t.detach().clone()
            continue
        g = torch.Generator().manual_seed((int(seed) << 32) ^ zlib.crc32(key.encode()))
        x = torch.randn(t.shape, generator=g, dtype=torch.float32)
        if key.endswith((".bias", "noise_strength")):
            x = x * 0.1
        out[key] = x.to(t.dtype)
    return out


# ---------------------------------------------------------------------------------------------
# Running MAT in the harness (moebius.eval.baselines entry "mat")
# ---------------------------------------------------------------------------------------------

# The checkpoint for a benchmark's fine-tuning target (config benchmarks.<name>.finetune): the model
# MAT trained on that domain. Places_512.pkl is MAT's Places365-Standard (1.8M images) model: the
# paper's MAT cells on Places2 large / small (2.90 / 1.07 FID) are the numbers MAT's README gives for
# it; Places_512_FullData.pkl (8M images) scores better there.
WEIGHT_KEYS = {"places2": "mat_places512", "celebahq": "mat_celebahq512", "ffhq": "mat_ffhq512"}
STANDIN_SEEDS = {"places2": 1, "celebahq": 2, "ffhq": 3}  # deterministic_state seeds of the stand-ins


class MATInpainter:
    """The harness's inpainter for MAT: (images (B,3,R,R) [-1,1], masks (B,1,R,R) 1 = hole, seeds,
    guidance (unused)) → composited images in [-1,1], R = ``model_size`` (the network's resolution).

    Per image, z and both style-manipulation masks come from that image's seeded generator.
    DEVIATION (official generate_image.py): it draws z from numpy's global RNG (seed 240, in file order)
    and the masks from torch's global RNG through F.dropout; ours give each image its own stream, so
    an image's result does not depend on the order or batch it is run in. The distribution is the same.
    """

    def __init__(self, model: MATGenerator, weights_kind: str, record: dict):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device)
        self.model_size = model.cfg.resolution
        self.weights_kind = weights_kind
        self.weights_record = record

    def __call__(self, images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        # The harness's per-image seeding (imported here: moebius.diffusion pulls in the sampler).
        from moebius.diffusion.seeding import image_generators

        if images.shape[-1] != self.model_size or images.shape[-2] != self.model_size:
            raise EvalError(f"MAT runs at {self.model_size} px, got {tuple(images.shape[-2:])} images: resize them "
                            f"first (inpaint_benchmark does, from the inpainter's model_size)")
        known = (masks <= 0.5).to(torch.float32)  # harness 1 = hole → MAT 1 = known
        z, keep1, keep2 = draw_inputs(self.model, image_generators(seeds))
        d = self.device
        with torch.inference_mode():
            out = self.model(images.to(d, torch.float32), known.to(d), z.to(d), keep1.to(d), keep2.to(d),
                             noise_mode="const", truncation_psi=1.0)
        # generate_image.py quantises out·127.5 + 127.5 clamped to [0, 255]: the same range.
        return out.clamp(-1, 1).to(images.device)


def load_mat_inpainter(scale: str, allow_standin: bool, weights_dir: str | None, target: str | None) -> MATInpainter:
    """MAT for the benchmarks of fine-tuning target ``target``: the converted official checkpoint
    (``moebius.weights`` key ``WEIGHT_KEYS[target]``), or, at smoke scale (or when the file is missing
    and stand-ins are allowed), a stand-in: ``STANDIN`` widths, weights from ``deterministic_state``,
    written as safetensors and read back through the same loader, labelled ``standin``."""
    import tempfile
    from pathlib import Path

    from moebius import weights as registry
    from moebius.eval.mat_convert import FORMAT, load_mat_state, mat_from_state

    if target not in WEIGHT_KEYS:
        raise EvalError(f"mat: no MAT checkpoint for fine-tuning target {target!r}; known: {', '.join(WEIGHT_KEYS)}")
    key = WEIGHT_KEYS[target]
    if scale == "smoke":
        if not allow_standin:
            raise EvalError("mat: smoke scale runs a stand-in MAT; set weights.allow_standin")
        path, kind = None, "standin"
    else:
        path, kind = registry.resolve_or_standin(key, allow_standin, weights_dir)
    if path is None:
        from safetensors.torch import save_file

        model = MATGenerator(STANDIN)
        state = deterministic_state(model, STANDIN_SEEDS[target])
        with tempfile.TemporaryDirectory(prefix="moebius-mat-standin-") as tmp:
            path = Path(tmp) / f"{key}_standin.safetensors"
            save_file(state, str(path), metadata={"format": FORMAT, "class": "standin"})
            state, sha256 = load_mat_state(path)
        record = {"key": key, "file": "standin (generated)", "standin_seed": STANDIN_SEEDS[target]}
    else:
        state, sha256 = load_mat_state(path)
        record = {"key": key, "file": Path(path).name}
    model = mat_from_state(state, str(path))
    record.update({"sha256": sha256, "config": asdict(model.cfg), "noise_mode": "const", "truncation_psi": 1.0})
    return MATInpainter(model, kind, record)
