"""The official training-sample pipeline (RemovalDataset_v1_2): resize, LaMa hole, dilation, crop, flip.

Statistics are taken over 2,000 samples with fixed seeds; each bound is several binomial standard
deviations wide, so it holds for any seed, and tight enough to fail on a wrong probability.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from conftest import TOY
from PIL import Image
from torchvision import transforms

from moebius.errors import TrainError
from moebius.masks.lama import lama_candidate
from moebius.masks.registry import LAMA_CONFIGS
from moebius.seeding import numpy_rng
from moebius.train.batches import TrainStream, list_images
from moebius.train.data_pipeline import (
    mask_crop_offset,
    official_hole,
    official_sample,
    resize_hole,
    resize_short_side,
)

N = 2000


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def draws():
    """2,000 official samples of a 16 x 24 image at S = 16 (holes from lama_medium_256, native 256)."""
    img = _image(16, 24)
    return [official_sample(numpy_rng("train", 9, "sample", p), img, 16, "lama_medium_256") for p in range(N)]


def test_flip_dilation_and_kernel_shares_follow_the_official_probabilities(draws):
    aug = [d[2] for d in draws]
    flipped = sum(a.flipped for a in aug) / N
    assert 0.45 < flipped < 0.55  # p = 0.5 (σ = 0.011)
    undilated = sum(a.kernel is None for a in aug)
    assert 1 <= undilated <= 50  # p = 0.01: 20 expected (σ = 4.4); 0 would mean "always dilated"
    kernels = Counter(a.kernel for a in aug if a.kernel is not None)
    assert set(kernels) == {3, 5, 7}
    assert all(0.28 < n / sum(kernels.values()) < 0.39 for n in kernels.values())  # 1/3 each
    iterations = Counter(a.iterations for a in aug if a.kernel is not None)
    assert set(iterations) == {1, 2} and 0.45 < iterations[1] / sum(iterations.values()) < 0.55
    assert all(a.iterations == 0 for a in aug if a.kernel is None)


def test_crop_moves_along_the_long_side_and_the_flip_mirrors_image_and_hole_together(draws):
    img = _image(16, 24)
    lefts = Counter(d[2].left for d in draws)
    assert all(d[2].top == 0 for d in draws) and set(lefts) <= set(range(9)) and len(lefts) > 3
    for out, hole, a in draws[:50]:
        expected = img[:, a.left : a.left + 16]
        assert np.array_equal(out, expected[:, ::-1] if a.flipped else expected)
        assert hole.shape == (16, 16) and hole.dtype == bool


def test_dilation_is_cv2_dilate_of_the_lama_hole_with_the_drawn_kernel():
    # At S = native (256 for lama_medium_256) the canvas is the image: the hole is the official one.
    for p in range(40):
        rng_a, rng_b = numpy_rng("train", 1, "sample", p), numpy_rng("train", 1, "sample", p)
        hole, aug = official_hole(rng_a, "lama_medium_256", 256, 320, 256)
        raw = lama_candidate(rng_b, LAMA_CONFIGS["medium_256"], 256, 320)  # the same draws, undilated
        if aug.kernel is None:
            assert np.array_equal(hole, raw)
            continue
        kernel = np.ones((aug.kernel, aug.kernel), np.uint8)
        assert np.array_equal(hole, cv2.dilate(raw.astype(np.uint8), kernel, iterations=aug.iterations) > 0)
        assert hole.sum() > raw.sum() and not (raw & ~hole).any()  # grown, nothing lost


def test_a_smaller_training_size_gets_the_native_hole_resized():
    """Smoke trains at 64 px: the hole is drawn and dilated at 512 and nearest-resized, so strokes,
    boxes and dilation keep their size relative to the image (the stored masks' convention)."""
    for p in range(5):
        full, a = official_hole(numpy_rng("train", 2, "sample", p), "lama_medium_512", 512, 512, 512)
        small, b = official_hole(numpy_rng("train", 2, "sample", p), "lama_medium_512", 64, 64, 64)
        assert a == b and np.array_equal(small, resize_hole(full, 64, 64))


def test_crop_keeps_the_hole():
    """RandomMaskCrop: the window reaches the midpoint of the hole's extent along the long side."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        hole = np.zeros((16, 40), bool)
        a = int(rng.integers(0, 38))
        b = int(rng.integers(a + 1, min(a + 16, 40)))
        hole[int(rng.integers(16)), a : b + 1] = True
        top, left = mask_crop_offset(rng, hole, 16)
        assert top == 0 and 0 <= left <= 40 - 16
        kept = hole[:, left : left + 16].any(axis=0).sum()
        assert kept >= (b - a) // 2  # ⌊(e − 1)/2⌋ of the hole's e columns or more
        assert kept >= 1 or b - a < 2  # from 3 columns on, never none (the official truncation)
    # the official offsets for a hole over columns 30..37 (c = 33.5) of a 40-wide image, S = 16: 17..23
    hole = np.zeros((16, 40), bool)
    hole[5, 30:38] = True
    offsets = {mask_crop_offset(rng, hole, 16)[1] for _ in range(400)}
    assert offsets == set(range(17, 24))
    # no hole: uniform over [0, L − S); a tall image crops along its height
    assert {mask_crop_offset(rng, np.zeros((16, 20), bool), 16)[1] for _ in range(300)} == {0, 1, 2, 3}
    tall = np.zeros((40, 16), bool)
    tall[30:38, 5] = True
    assert {mask_crop_offset(rng, tall, 16) for _ in range(400)} == {(o, 0) for o in range(17, 24)}


def test_resize_is_torchvisions_lanczos_short_side_resize():
    for h, w in ((30, 50), (50, 30), (16, 17)):
        img = _image(h, w, seed=h)
        ours = resize_short_side(img, 16)
        ref = np.asarray(transforms.Resize(16, interpolation=transforms.InterpolationMode.LANCZOS)(Image.fromarray(img)))
        assert ours.shape == ref.shape and min(ours.shape[:2]) == 16
        assert np.array_equal(ours, ref)
        if ours.shape != img.shape:
            bicubic = np.asarray(Image.fromarray(img).resize(ours.shape[1::-1], Image.BICUBIC))
            assert not np.array_equal(ours, bicubic)  # the filter matters: not the project's bicubic
    same = _image(16, 40)
    assert resize_short_side(same, 16) is same  # already the size: left as it is


def test_stream_sample_is_the_pipeline_on_the_lanczos_resized_file(tmp_path):
    from conftest import write_dataset

    write_dataset(tmp_path, TOY, "train", 2, seed=4)  # 16 x 16 files
    paths = list_images(tmp_path, [TOY], "train")
    stream = TrainStream(paths, 24, seed=7, mask_protocols=["lama_medium_512"], pipeline="official")
    for p in range(4):
        image, mask = stream[p]
        raw = np.asarray(Image.open(paths[stream.image_index(p)]).convert("RGB"))
        resized = np.asarray(transforms.Resize(24, interpolation=transforms.InterpolationMode.LANCZOS)(Image.fromarray(raw)))
        out, hole, _ = official_sample(numpy_rng("train", 7, "sample", p), resized, 24, "lama_medium_512")
        assert torch.equal(image, torch.from_numpy(out.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1.0)
        assert torch.equal(mask[0], torch.from_numpy(hole.astype(np.float32)))


@pytest.mark.hostile(
    "the official pipeline given a non-LaMa protocol, two protocols, or an unknown pipeline name",
    "TrainError naming what is allowed, before any sample is made",
)
def test_bad_pipeline_settings_are_errors(data_root):
    paths = list_images(data_root, [TOY], "train")
    with pytest.raises(TrainError, match="LaMa"):
        TrainStream(paths, 16, 0, ["mat_large_512"], pipeline="official")[0]
    with pytest.raises(TrainError, match="one LaMa protocol"):
        TrainStream(paths, 16, 0, ["lama_medium_512", "lama_thick_512"], pipeline="official")
    with pytest.raises(TrainError, match="unknown training pipeline"):
        TrainStream(paths, 16, 0, None, pipeline="offical")
