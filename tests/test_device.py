"""moebius.device.resolve_device: what `auto` means, and a GPU asked for where there is none."""

from __future__ import annotations

import pytest
import torch

from moebius.device import resolve_device
from moebius.errors import ConfigError


def test_auto_follows_cuda_availability(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")  # an explicit choice is kept
    assert resolve_device(torch.device("meta")) == torch.device("meta")


@pytest.mark.hostile("profile.device: cuda on a machine without a GPU", "ConfigError naming the setting, no CUDA traceback")
def test_cuda_without_a_gpu_is_one_config_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="profile.device is 'cuda:1' but no CUDA device"):
        resolve_device("cuda:1", "profile.device")


@pytest.mark.hostile("a device name torch does not know ('gpu')", "ConfigError listing auto, cpu, cuda")
def test_unknown_device_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="choose one of auto, cpu, cuda"):
        resolve_device("gpu")
