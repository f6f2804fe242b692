"""Per-mask generators: reproducible, independent of order and process, sensitive to every key part."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from moebius.errors import UnknownNameError
from moebius.masks import MaskError, generate_mask, mask_rng, resize_nearest, sample_training_mask


def test_same_key_same_stream_and_every_key_part_matters() -> None:
    base = mask_rng("mat_large_512", 1, 0, "img1").integers(1 << 30, size=8)
    assert np.array_equal(base, mask_rng("mat_large_512", 1, 0, "img1").integers(1 << 30, size=8))
    for other in [("mat_small_512", 1, 0, "img1"), ("mat_large_512", 2, 0, "img1"),
                  ("mat_large_512", 1, 1, "img1"), ("mat_large_512", 1, 0, "img2")]:
        assert not np.array_equal(base, mask_rng(*other).integers(1 << 30, size=8)), other


def test_stream_is_the_same_in_a_fresh_process(repo_root) -> None:
    """Catches any use of Python's per-process salted hash() in the seed."""
    code = ("from moebius.masks import mask_rng;"
            "print(mask_rng('lama_thin_256', 1, 42, 'x/7').integers(1 << 30, size=4).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=repo_root, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert out.strip() == str(mask_rng("lama_thin_256", 1, 42, "x/7").integers(1 << 30, size=4).tolist())


def test_masks_do_not_depend_on_generation_order() -> None:
    ids = ["a", "b", "c"]
    forward = {i: generate_mask("migan_256", i, 3) for i in ids}
    backward = {i: generate_mask("migan_256", i, 3) for i in reversed(ids)}
    assert all(np.array_equal(forward[i], backward[i]) for i in ids)
    assert not np.array_equal(forward["a"], forward["b"])
    assert np.array_equal(generate_mask("migan_256", 7, 3), generate_mask("migan_256", "7", 3))


def test_resize_nearest_samples_pixel_centres() -> None:
    # 8x8 blocks, each with a single hole pixel at (4, 4): the centre sample of each block hits it.
    src = np.zeros((64, 64), bool)
    src[4::8, 4::8] = True
    assert resize_nearest(src, 8).all()
    src2 = np.zeros((64, 64), bool)
    src2[0::8, 0::8] = True  # top-left corners: what a corner-sampling resize would pick
    assert not resize_nearest(src2, 8).any()
    small = np.random.default_rng(0).random((4, 4)) > 0.5
    assert np.array_equal(resize_nearest(small, 12), np.kron(small, np.ones((3, 3), bool)))


def test_sample_training_mask_is_seeded_and_resized() -> None:
    a = sample_training_mask(np.random.default_rng(9), 64, ["mat_large_512", "lama_thin_256"])
    b = sample_training_mask(np.random.default_rng(9), 64, ["mat_large_512", "lama_thin_256"])
    assert a.dtype == bool and a.shape == (64, 64) and np.array_equal(a, b)
    rng = np.random.default_rng(1)
    draws = [sample_training_mask(rng, 32, ["mat_small_256"]) for _ in range(5)]
    assert len({d.tobytes() for d in draws}) == 5  # the caller's stream advances
    with pytest.raises(MaskError):
        sample_training_mask(rng, 32, [])
    with pytest.raises(UnknownNameError, match="did you mean 'migan_256'"):
        sample_training_mask(rng, 32, ["migan256"])
