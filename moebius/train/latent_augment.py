"""The 'bg' augmentation E-LatentLPIPS applies to both latents before its trunk ("ensembling").

E-LatentLPIPS (Kang et al., "Diffusion2GAN", 2024, Sec. 4) ensembles the latent distance over random
geometric transforms: the StyleGAN2-ADA augmentation pipeline (Karras et al., "Training Generative
Adversarial Networks with Limited Data", 2020, App. B.1) restricted to its pixel-blitting ('b') and
general-geometric ('g') groups, run at overall strength p = 1 (the ``elatentlpips`` package sets its
pipe's p to 1.0). One transform is drawn per sample and applied identically to both inputs, so the
distance of a latent to itself stays zero. Our own implementation of that algorithm:

- draws, per sample and in the pipeline's order (each value, then its gate ``rand < multiplier·p``):
  x-flip (``⌊2u⌋``), a multiple of 90° (``⌊4u⌋``), an integer translation (uniform in ±0.125 of the size,
  rounded to pixels), an isotropic scale ``2^(0.2 N)``, a rotation uniform in ±180° applied before and
  after an anisotropic scale ``(2^(0.2 N), 2^(-0.2 N))`` (each rotation gated with 1 − √(1 − p), so
  P(pre or post) = p), and a fractional translation ``0.125 N`` of the size;
- composes them into one inverse homogeneous matrix (output pixel -> input pixel, centred pixel units);
- resamples as ADA does: reflection-pads enough border (from the transformed corners, the same margin for
  the whole batch, at most size − 1 per side, zeros beyond), upsamples 2x with the Symlet-6 wavelet
  low-pass filter, samples bilinearly with ``grid_sample``, low-passes and downsamples 2x, crops.

Every draw comes from a ``torch.Generator`` the caller passes (one per training step), so a step's
transforms are reproducible and survive resumption.
"""

# DEVIATION (official code): the ``elatentlpips`` pipe draws from the global RNG of the inputs' device
# (torch.rand / torch.randn without a generator). Ours draws the same quantities in the same order and
# shapes from the given generator (on the generator's device), so with ``torch.default_generator`` on a
# CPU the sequence of draws is by construction the official one (not checked: the package is not
# installed here). Two smaller differences: the resampling runs in fp32 with autocast off (the official
# pipe runs in whatever dtype it is handed), and p = 0 returns the inputs untouched, where ADA would
# still resample them through an identity transform (equal up to float rounding, tested).

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from moebius.errors import TrainError

# Symlet-6 low-pass decomposition filter (published wavelet coefficients, PyWavelets' sym6.dec_lo):
# ADA's anti-aliasing filter for geometric transforms. Orthonormal, so a 2x upsample followed by the
# matching downsample reconstructs the input exactly (tested).
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)  # fmt: skip
LOWPASS = tuple(v / math.fsum(SYM6) for v in SYM6)  # normalised to unit DC gain, as ADA's setup_filter

# ADA's strengths for the 'b' and 'g' groups (its defaults; the 'bg' spec sets every multiplier to 1).
XINT_MAX = 0.125  # integer translation range, relative to the size
SCALE_STD = 0.2  # log2 std of the isotropic scale
ROTATE_MAX = 1.0  # rotation range, 1 = full circle
ANISO_STD = 0.2  # log2 std of the anisotropic scale
XFRAC_STD = 0.125  # std of the fractional translation, relative to the size


@dataclass(frozen=True)
class Transforms:
    """Per-sample parameters of one draw; a gated-off transform holds its identity value."""

    xflip: torch.Tensor  # (B,) 0 or 1
    rot90: torch.Tensor  # (B,) 0..3 quarter turns
    xint: torch.Tensor  # (B, 2) translation as a fraction of (width, height), rounded to pixels later
    scale: torch.Tensor  # (B,) isotropic scale
    rot_pre: torch.Tensor  # (B,) radians, before the anisotropic scale
    aniso: torch.Tensor  # (B,) anisotropic scale s: x scaled by s, y by 1/s
    rot_post: torch.Tensor  # (B,) radians, after it
    xfrac: torch.Tensor  # (B, 2) translation as a fraction of (width, height)


def draw_transforms(batch: int, generator: torch.Generator, p: float = 1.0) -> Transforms:
    """One 'bg' transform per sample at overall probability ``p`` (ADA's order of draws)."""
    if not 0.0 <= p <= 1.0:
        raise TrainError(f"augmentation probability must lie in [0, 1], got {p}")
    dev = generator.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=dev)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=dev)

    def gate(value: torch.Tensor, identity: float, prob: float, *shape: int) -> torch.Tensor:
        return torch.where(rand(*shape) < prob, value, torch.full_like(value, identity))

    xflip = gate(torch.floor(rand(batch) * 2), 0.0, p, batch)
    rot90 = gate(torch.floor(rand(batch) * 4), 0.0, p, batch)
    xint = gate((rand(batch, 2) * 2 - 1) * XINT_MAX, 0.0, p, batch, 1)
    scale = gate(torch.exp2(randn(batch) * SCALE_STD), 1.0, p, batch)
    p_rot = 1.0 - math.sqrt(max(1.0 - p, 0.0))  # P(pre or post) = p
    rot_pre = gate((rand(batch) * 2 - 1) * math.pi * ROTATE_MAX, 0.0, p_rot, batch)
    aniso = gate(torch.exp2(randn(batch) * ANISO_STD), 1.0, p, batch)
    rot_post = gate((rand(batch) * 2 - 1) * math.pi * ROTATE_MAX, 0.0, p_rot, batch)
    xfrac = gate(randn(batch, 2) * XFRAC_STD, 0.0, p, batch, 1)
    return Transforms(xflip, rot90, xint, scale, rot_pre, aniso, rot_post, xfrac)


# ---------------------------------------------------------------------------------------------
# Homogeneous 2-D matrices, batched (B, 3, 3)
# ---------------------------------------------------------------------------------------------


def _mat(rows: list[list[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    """Stack a 3x3 matrix of per-sample scalars (tensors of shape (B,) or floats) into (B, 3, 3)."""
    cols = [torch.as_tensor(v, dtype=like.dtype, device=like.device).expand_as(like) for row in rows for v in row]
    return torch.stack(cols, dim=-1).view(-1, 3, 3)


def _translate(tx, ty, like: torch.Tensor) -> torch.Tensor:
    return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def _scale(sx, sy, like: torch.Tensor) -> torch.Tensor:
    return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def inverse_matrix(tr: Transforms, height: int, width: int) -> torch.Tensor:
    """(B, 3, 3) map from output to input pixel, in pixel units centred on the image.

    The image is flipped, turned, shifted by whole pixels, scaled, rotated, stretched, rotated and
    shifted, in that order; the inverse is the product of the inverses in the same order.
    """
    one = tr.scale
    g = _scale(1 - 2 * tr.xflip, 1.0, one)  # a flip is its own inverse
    g = g @ _rotate(math.pi / 2 * tr.rot90)
    g = g @ _translate(-torch.round(tr.xint[:, 0] * width), -torch.round(tr.xint[:, 1] * height), one)
    g = g @ _scale(1 / tr.scale, 1 / tr.scale, one)
    g = g @ _rotate(tr.rot_pre)
    g = g @ _scale(1 / tr.aniso, tr.aniso, one)
    g = g @ _rotate(tr.rot_post)
    g = g @ _translate(-tr.xfrac[:, 0] * width, -tr.xfrac[:, 1] * height, one)
    return g


# ---------------------------------------------------------------------------------------------
# Resampling: reflection pad, 2x wavelet upsample, bilinear sample, 2x wavelet downsample
# ---------------------------------------------------------------------------------------------


def _fir(x: torch.Tensor, taps: tuple[float, ...], dim: int, stride: int) -> torch.Tensor:
    """'Valid' correlation with ``taps`` along ``dim``, every ``stride``-th output: a sum of shifted views
    (speed only: far cheaper than a one-channel conv2d, backward included, on CPU and GPU)."""
    n_out = (x.shape[dim] - len(taps)) // stride + 1
    span = stride * (n_out - 1) + 1
    out = None
    for k, tap in enumerate(taps):
        term = tap * x.narrow(dim, k, span)
        out = term if out is None else out + term
    return out[:, :, :, ::stride] if dim == -1 else out[:, :, ::stride, :]


def _filter_rows_cols(x: torch.Tensor, taps: tuple[float, ...], stride: int = 1) -> torch.Tensor:
    """Separable 'valid' correlation of every channel with ``taps`` along width, then height."""
    return _fir(_fir(x, taps, -1, stride), taps, -2, stride)


def upsample2x(x: torch.Tensor, f: tuple[float, ...]) -> torch.Tensor:
    """Zero-insert 2x, then convolve with ``f`` (sum 1, gain 2 per axis): output (2h, 2w)."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, h, 2, w, 2)
    up[:, :, :, 0, :, 0] = x
    up = up.view(b, c, 2 * h, 2 * w)
    n = len(f)
    lo, hi = (n + 1) // 2, (n - 2) // 2  # (n-1) samples of support, placed so the filter is centred
    up = F.pad(up, [lo, hi, lo, hi])
    return _filter_rows_cols(up, tuple(2 * v for v in reversed(f)))  # reversed: a convolution; x2 keeps the mean


def downsample2x(x: torch.Tensor, f: tuple[float, ...], crop: int) -> torch.Tensor:
    """Correlate with ``f`` (the mirror of the upsampling convolution) and keep every 2nd sample,
    after cropping ``crop`` samples from each side: (H, W) -> ((H - 2 crop) / 2, (W - 2 crop) / 2)."""
    n = len(f)
    lo, hi = (n - 1) // 2 - crop, (n - 2) // 2 - crop  # negative: F.pad crops
    return _filter_rows_cols(F.pad(x, [lo, hi, lo, hi]), f, stride=2)


def warp(x: torch.Tensor, g_inv: torch.Tensor, f: tuple[float, ...] = ()) -> torch.Tensor:
    """Resample (B, C, H, W) through per-sample inverse matrices ``g_inv`` (centred pixel units),
    anti-aliased with the low-pass ``f`` (taps summing to 1; default: Symlet-6)."""
    f = f or LOWPASS
    b, c, h, w = x.shape
    hz = len(f) // 4  # filter half-support at 1x
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # Pad enough (for every sample) that the sampled area plus the filter support lies in the image.
    corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1.0, 1.0, 1.0, 1.0]], dtype=g_inv.dtype)
    cp = g_inv.cpu() @ corners  # (B, 3, 4) where the output's corners come from
    xy = cp[:, :2, :].permute(1, 0, 2).flatten(1)  # (2, B*4)
    margin = torch.cat([-xy, xy]).max(dim=1).values  # (4,) x0, y0, x1, y1
    margin = margin + torch.tensor([2 * hz - cx, 2 * hz - cy] * 2, dtype=margin.dtype)
    margin = torch.minimum(margin.clamp(min=0), torch.tensor([w - 1, h - 1] * 2, dtype=margin.dtype))
    mx0, my0, mx1, my1 = (int(v) for v in margin.ceil())
    x = F.pad(x, [mx0, mx1, my0, my1], mode="reflect")
    g = _translate((mx0 - mx1) / 2, (my0 - my1) / 2, g_inv[:, 0, 0]) @ g_inv  # padded image's centre

    x = upsample2x(x, f)
    one = g[:, 0, 0]
    g = _scale(2.0, 2.0, one) @ g @ _scale(0.5, 0.5, one)
    g = _translate(-0.5, -0.5, one) @ g @ _translate(0.5, 0.5, one)  # the upsampled grid's half-pixel shift

    out_h, out_w = (h + 2 * hz) * 2, (w + 2 * hz) * 2
    src_h, src_w = x.shape[-2:]
    g = _scale(2 / src_w, 2 / src_h, one) @ g @ _scale(out_w / 2, out_h / 2, one)  # -> grid_sample's [-1, 1]
    grid = F.affine_grid(g[:, :2, :].to(x.dtype), [b, c, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample2x(x, f, crop=2 * hz)


class LatentAugment(nn.Module):
    """(a, b) -> the same random 'bg' transform of each pair of samples; ``p = 0`` is the identity.

    Holds no tensors, so the E-LatentLPIPS state dict keeps the official file's keys.
    """

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise TrainError(f"augmentation probability must lie in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if a.shape != b.shape or a.ndim != 4:
            raise TrainError(f"augmentation needs two (B, C, H, W) tensors of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
        if self.p == 0.0:
            return a, b
        tr = draw_transforms(a.shape[0], generator, self.p)
        g_inv = inverse_matrix(tr, a.shape[-2], a.shape[-1]).to(a.device)
        c = a.shape[1]
        # fp32 whatever the autocast dtype: the filters and the sampling are cheap next to the trunk
        with torch.autocast(a.device.type, enabled=False):
            both = warp(torch.cat([a, b], dim=1).float(), g_inv.float())  # (B, 2C, H, W)
        return both[:, :c], both[:, c:]
