"""LCG ids of training samples: the official rule (by task category) and the CFG-dropout switch."""

from __future__ import annotations

import pytest
import torch
from conftest import PRESET

from moebius.diffusion.schedule import scaled_linear_schedule
from moebius.errors import ModelInputError
from moebius.models import build_vae
from moebius.models.lcg import category_ids
from moebius.train.batches import diffusion_batch


def test_ids_follow_the_task_category():
    ids = category_ids(["background", "foreground", "background"])
    assert ids.dtype == torch.long and ids.shape == (3, 10)
    assert ids[0].tolist() == list(range(10)) == ids[2].tolist()  # `_get_input_ids('background')`
    assert ids[1].tolist() == list(range(10, 20))  # `_get_input_ids('foreground')`
    with pytest.raises(ModelInputError, match="category"):
        category_ids(["object"])


@pytest.fixture(scope="module")
def batch_inputs():
    torch.manual_seed(0)
    vae = build_vae(PRESET).eval()
    images = torch.rand(256, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    masks = torch.zeros(256, 1, 16, 16)
    masks[:, :, 4:12, 4:12] = 1.0
    return vae, images, masks


def _batch(batch_inputs, uncond_prob, categories=None, n=256):
    vae, images, masks = batch_inputs
    images, masks = images[:n], masks[:n]
    with torch.no_grad():
        return diffusion_batch(vae, images, masks, torch.Generator().manual_seed(3), scaled_linear_schedule(),
                               "lognorm", 0.0357, uncond_prob, categories)


def test_official_rule_gives_mask_free_samples_the_background_ids_and_dropout_is_a_switch(batch_inputs):
    official = _batch(batch_inputs, 0.0)
    assert torch.equal(official.ids, category_ids(["background"] * 256))  # no sample gets 10..19
    dropout = _batch(batch_inputs, 0.1)
    share = float((dropout.ids[:, 0] == 10).float().mean())
    assert 0.04 < share < 0.16  # p = 0.1 (σ = 0.019)
    assert set(dropout.ids[:, 0].tolist()) == {0, 10}
    # the rule changes the ids only: noise and timesteps come from the same draws
    assert torch.equal(official.t, dropout.t) and torch.equal(official.noise, dropout.noise)
    fg = _batch(batch_inputs, 0.0, ["foreground", "background"], n=2)
    assert torch.equal(fg.ids, category_ids(["foreground", "background"]))
