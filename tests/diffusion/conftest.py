"""The sampler tests' models: the real student and VAE at the ``tiny`` preset (32 px images, 8×8 latents)."""

from __future__ import annotations

import pytest
import torch

from moebius.models import build_model, build_vae

PRESET = "tiny"


def tiny_vae():
    torch.manual_seed(0)
    vae = build_vae(PRESET)
    vae.register_to_config(scaling_factor=0.5)  # not 1, so that a lost scale shows
    return vae.eval()


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every diffusion test on one thread (tests/conftest.py ``one_thread``)."""


@pytest.fixture
def model():
    """The tiny student in eval mode; ``model.calls`` lists (batch size, LCG ids) of every forward."""
    torch.manual_seed(1)
    student = build_model("student", PRESET).eval()
    student.calls = []

    def record(module, args):
        noisy_latents, _timesteps, input_ids = args
        module.calls.append((noisy_latents.shape[0], input_ids.detach().clone()))

    student.register_forward_pre_hook(record)
    return student


@pytest.fixture
def vae():
    return tiny_vae()


@pytest.fixture
def batch():
    """Four 32-px images in [-1,1] with distinct box holes."""
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    masks = torch.zeros(4, 1, 32, 32)
    for i in range(4):
        masks[i, :, 4 + 2 * i : 20 + 2 * i, 6:22] = 1.0
    return images, masks
