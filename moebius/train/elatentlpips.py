"""E-LatentLPIPS: a perceptual distance computed directly on VAE latents (paper Sec. 3.3, L_perceptual).

Our own re-implementation of the network of Kang et al., "Diffusion2GAN" / ``elatentlpips`` (the package
is not installed here), built so that its ``state_dict`` has exactly the keys and shapes of the official
``sdxl_latest_vgg16_tuned.pth`` (see tests/train/manifests/elatentlpips_sdxl_state_dict.tsv):

- trunk: torchvision ``vgg16_bn`` features with the first conv taking the 4 latent channels (4 -> 64)
  and the first three max-pools replaced by identities (a 64x64 latent is already 8x downsampled),
  cut into five slices at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3;
- five 1x1 "lin" heads (dropout + bias-free conv to 1 channel) applied to squared differences of
  channel-unit-normalised features, spatially averaged and summed, ``lin0..4`` also reachable as
  ``lins.0..4`` (the official checkpoint stores them under both names);
- plus the mean absolute difference of the latents (the official ``add_l1_loss=True``).

The call options of the official ``forward`` are kept: ``normalize=True`` multiplies both latents by the
``sdxl`` factor 0.13025 first (the L1 term included), ``ensembling=True`` applies one random 'bg'
augmentation per sample to both latents after the L1 term and before the trunk (latent_augment.py).
Feature maps are unit-normalised as x / sqrt(Σ_c x² + 1e-8), the official ``normalize_tensor``.

LICENCE: the official E-LatentLPIPS weights (and the reference code) are CC-BY-NC 4.0, non-commercial.
Runs that load them inherit that restriction; the smoke stand-in carries no third-party weights.

Full scale loads the official file through ``moebius.weights.resolve_weight("elatentlpips_sdxl_vgg16_tuned")``;
smoke scale uses a narrow stand-in of the same class with fixed-seed Kaiming init (weights_kind "standin").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from moebius.errors import TrainError
from moebius.train.latent_augment import LatentAugment

if TYPE_CHECKING:
    from moebius.config import Config

OFFICIAL_WIDTHS = (64, 128, 256, 512, 512)
STANDIN_WIDTHS = (8, 16, 32, 64, 64)  # 1/8 width: the official trunk costs seconds per step on a CPU
STANDIN_SEED = 1234
OFFICIAL_WEIGHT = "elatentlpips_sdxl_vgg16_tuned"  # moebius.weights name of sdxl_latest_vgg16_tuned.pth
# What the official forward(normalize=True) multiplies latents by for encoder="sdxl": the metric's own
# constant (its "sdxl" input convention), applied whatever VAE produced the latents.
SDXL_LATENT_SCALE = 0.13025
NORM_EPS = 1e-8  # official normalize_tensor: x / sqrt(sum(x^2) + eps)


def _trunk(latent_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    """vgg16_bn ``features`` (44 modules, same indices), first conv 4->w0, first three max-pools removed."""
    reps = (2, 2, 3, 3, 3)  # convs per VGG stage
    layers: list[nn.Module] = []
    cin = latent_channels
    for stage, (w, n) in enumerate(zip(widths, reps)):
        for _ in range(n):
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            cin = w
        # stages 0-2 keep full resolution (Identity keeps the official module indices)
        layers.append(nn.Identity() if stage < 3 else nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class _Trunk(nn.Module):
    """The five slices of the trunk; slice boundaries as in the official CalibratedLatentVGG16BN."""

    BOUNDS = ((0, 7), (7, 14), (14, 24), (24, 34), (34, 44))

    def __init__(self, latent_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        features = _trunk(latent_channels, widths)
        for i, (a, b) in enumerate(self.BOUNDS, start=1):
            s = nn.Sequential()
            for idx in range(a, b):
                s.add_module(str(idx), features[idx])  # keep the vgg16_bn index as the key
            setattr(self, f"slice{i}", s)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(1, 6):
            x = getattr(self, f"slice{i}")(x)
            outs.append(x)
        return outs


class _Lin(nn.Module):
    """One calibrated head: dropout then a bias-free 1x1 conv to one channel (key ``model.1.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def unit_normalise(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """x / sqrt(Σ_c x² + eps) over the channel dimension (eps inside the root, as the official code)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True) + eps).sqrt()


class ELatentLPIPS(nn.Module):
    """d(z0, z1) per sample (B,): Σ_l mean_hw lin_l((φ̂_l(z0) - φ̂_l(z1))²) + mean|z0 - z1|.

    Inputs are VAE latents; ``normalize=True`` scales them by 0.13025 first, ``ensembling=True``
    augments both with draws from ``generator`` (``augment_p``: ADA's overall probability, 1 as in the
    official package). Both default to off (the official ``ensembling`` defaults to on, but here it
    needs the caller's generator, so it is asked for explicitly). The network is frozen and in eval mode.
    """

    def __init__(
        self,
        latent_channels: int = 4,
        widths: tuple[int, ...] = OFFICIAL_WIDTHS,
        add_l1: bool = True,
        augment_p: float = 1.0,
    ) -> None:
        super().__init__()
        if len(widths) != 5:
            raise TrainError(f"ELatentLPIPS needs five stage widths, got {widths}")
        self.net = _Trunk(latent_channels, tuple(widths))
        for i, w in enumerate(widths):
            setattr(self, f"lin{i}", _Lin(w))
        self.lins = nn.ModuleList([getattr(self, f"lin{i}") for i in range(5)])  # same modules, 2nd name
        self.add_l1 = add_l1
        self.augment = LatentAugment(augment_p)  # stateless: the state dict keeps the official keys
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ELatentLPIPS":
        return super().train(False)  # always eval: BatchNorm uses the calibrated running statistics

    def forward(
        self,
        z0: torch.Tensor,
        z1: torch.Tensor,
        *,
        normalize: bool = False,
        ensembling: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if normalize:
            z0, z1 = z0 * SDXL_LATENT_SCALE, z1 * SDXL_LATENT_SCALE  # (B, 4, h, w) each
        # the L1 term sees the scaled latents, before any augmentation (official order)
        l1 = F.l1_loss(z0, z1, reduction="none").mean(dim=(1, 2, 3)) if self.add_l1 else None
        if ensembling:
            if generator is None:
                raise TrainError("E-LatentLPIPS ensembling draws its augmentation from a generator; none was given")
            z0, z1 = self.augment(z0, z1, generator)
        f0, f1 = self.net(z0), self.net(z1)
        dist = z0.new_zeros(z0.shape[0])
        for lin, a, b in zip(self.lins, f0, f1):
            diff = (unit_normalise(a) - unit_normalise(b)) ** 2  # (B, C_l, h_l, w_l)
            dist = dist + lin(diff).mean(dim=(1, 2, 3))  # spatial average of a 1-channel map
        if l1 is not None:
            dist = dist + l1
        return dist


def standin_elatentlpips(latent_channels: int = 4) -> ELatentLPIPS:
    """A deterministic narrow stand-in: fixed-seed Kaiming-normal convs, positive unit-scale heads."""
    gen = torch.Generator().manual_seed(STANDIN_SEED)
    net = ELatentLPIPS(latent_channels, STANDIN_WIDTHS)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                std = (2.0 / fan_in) ** 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                if m.bias is not None:
                    m.bias.zero_()
        for lin in net.lins:  # LPIPS heads are non-negative: a distance, never a reward
            w = lin.model[1].weight
            w.copy_(torch.full_like(w, 1.0 / w.shape[1]))
    return net


def load_elatentlpips(path: str | Path) -> ELatentLPIPS:
    """The official network from ``sdxl_latest_vgg16_tuned.pth`` (plain state dict), loaded strict."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise TrainError(f"cannot read E-LatentLPIPS weights {path}: {str(exc).splitlines()[0]}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    net = ELatentLPIPS(4, OFFICIAL_WIDTHS)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TrainError(f"{path} is not an E-LatentLPIPS sdxl state dict: {str(exc).splitlines()[0]}") from exc
    return net.eval()


def build_perceptual_net(kind: str, cfg: "Config") -> tuple[ELatentLPIPS, str]:
    """(network, weights_kind): ``elatentlpips`` -> the official file (kind ``official``, or ``generated``
    for a ledgered rehearsal file), ``standin`` -> the stand-in."""
    if kind == "standin":
        return standin_elatentlpips(), "standin"
    if kind != "elatentlpips":
        raise TrainError(f"unknown perceptual network {kind!r} (elatentlpips | standin)")
    from moebius.weights import resolve_weight, weight_kind

    net = load_elatentlpips(resolve_weight(OFFICIAL_WEIGHT, cfg.weights.dir))
    return net, weight_kind(OFFICIAL_WEIGHT, cfg.weights.dir)  # "generated" where the ledger lists it
