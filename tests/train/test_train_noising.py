"""The training forward process and the deterministic batch stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from conftest import TOY

from moebius.errors import TrainError
from moebius.seeding import derive
from moebius.train.batches import StreamLayout, TrainStream, list_images
from moebius.diffusion.schedule import scaled_linear_schedule
from moebius.train.noising import sample_noise, sample_timesteps


def test_schedule_matches_diffusers_ddpm():
    ref = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, clip_sample=False)
    ours = scaled_linear_schedule()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(ours.add_noise(x0, eps, t), ref.add_noise(x0, eps, t), rtol=1e-5, atol=1e-5)
    zt = ours.add_noise(x0, eps, t)
    torch.testing.assert_close(ours.predict_x0(zt, eps, t), x0, rtol=1e-4, atol=1e-4)
    other = torch.randn(1, 4, 8, 8, generator=g)  # any ε-prediction, not only the true noise
    step = ref.step(other, 500, zt[2:3]).pred_original_sample  # diffusers' x̂0 at t=500
    torch.testing.assert_close(ours.predict_x0(zt[2:3], other, t[2:3]), step, rtol=1e-4, atol=1e-4)


def test_lognorm_timesteps_concentrate_in_the_middle():
    t = sample_timesteps(20_000, torch.Generator().manual_seed(0), "lognorm")
    assert t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
    assert abs(float(t.float().median()) - 500) < 15  # sigmoid(N(0,1)) is symmetric about 0.5
    frac_tails = float(((t < 100) | (t >= 900)).float().mean())
    assert frac_tails < 0.05  # uniform would put 20% there
    u = sample_timesteps(20_000, torch.Generator().manual_seed(0), "uniform")
    assert 0.17 < float(((u < 100) | (u >= 900)).float().mean()) < 0.23
    with pytest.raises(TrainError):
        sample_timesteps(2, torch.Generator(), "cosine")


def test_noise_offset_adds_a_per_channel_constant():
    a = sample_noise((64, 4, 8, 8), torch.Generator().manual_seed(1), 0.0)
    b = sample_noise((64, 4, 8, 8), torch.Generator().manual_seed(1), 0.5)
    diff = b - a  # the offset term: constant over each (sample, channel) plane
    assert torch.allclose(diff, diff[..., :1, :1].expand_as(diff), atol=1e-6)
    assert 0.4 < float(diff[:, :, 0, 0].std()) < 0.6


@pytest.mark.parametrize("pipeline, protocol", [("official", "lama_medium_512"), ("project", "mat_large_512")])
def test_stream_is_a_function_of_position(data_root, pipeline, protocol):
    paths = list_images(data_root, [TOY], "train")
    s1 = TrainStream(paths, 16, seed=5, mask_protocols=[protocol], pipeline=pipeline)
    s2 = TrainStream(paths, 16, seed=5, mask_protocols=[protocol], pipeline=pipeline, cache=False)
    # each epoch is a permutation of all images, different between epochs
    epoch0 = [s1.image_index(p) for p in range(8)]
    epoch1 = [s1.image_index(p) for p in range(8, 16)]
    assert sorted(epoch0) == list(range(8)) == sorted(epoch1) and epoch0 != epoch1
    for p in (13, 2, 40):  # order of access does not matter
        i1, m1 = s1[p]
        i2, m2 = s2[p]
        assert torch.equal(i1, i2) and torch.equal(m1, m2)
    img, mask = s1[0]
    assert img.shape == (3, 16, 16) and -1.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert mask.shape == (1, 16, 16) and set(np.unique(mask.numpy())) <= {0.0, 1.0}
    assert derive("train", 5, "a", 1) != derive("train", 5, "a", 2)


def test_layout_tiles_positions_without_overlap():
    seen = []
    for rank in range(2):
        lay = StreamLayout(batch_size=3, accum=2, world_size=2, rank=rank)
        for step in range(2):
            for micro in range(2):
                seen += lay.positions(step, micro)
    assert sorted(seen) == list(range(2 * 2 * 2 * 3))


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(TrainError, match="not found"):
        list_images(tmp_path, ["nope"], "train")
