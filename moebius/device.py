"""Which torch device a job runs on: ``auto`` means the GPU when one is visible, else the CPU.

Every phase that takes a ``device`` setting (profile, metrics, inpainting, the diffusers baselines)
resolves it here, so that ``auto`` means the same everywhere and asking for a GPU on a machine
without one is one clear error instead of a CUDA traceback deep inside a job. Training picks its
device from torchrun's local rank instead (``moebius.train.loop.setup_distributed``).
"""

from __future__ import annotations

import torch

from moebius.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto", setting: str = "device") -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cuda`` (or ``cuda:N``) without a GPU → ConfigError.

    ``setting`` names the config entry in the error (e.g. ``profile.device``).
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"{setting} {device!r} is not a device; choose one of {', '.join(DEVICES)}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting} is {device!r} but no CUDA device is visible (torch.cuda.is_available() is False)")
    return resolved
