"""Smoke datasets: offline, deterministic to the byte, disjoint sources for OOD and test."""

from __future__ import annotations

import re

import numpy as np
import pytest

from moebius.data.manifest import read_manifest, verify_manifest
from moebius.data.preprocess import load_image
from moebius.data.smoke import SMOKE_DATASETS, make_smoke_dataset
from moebius.errors import DataError, UnknownNameError

NAMES = sorted(SMOKE_DATASETS)


def _photo_of(source: str) -> str:
    return re.match(r"skimage\.data\.(\w+)\[", source).group(1)


def _face_of(source: str) -> int:
    return int(re.match(r"skimage\.data\.lfw_subset\[(\d+)\]", source).group(1))


def _columns(source: str) -> tuple[int, int]:
    x0, x1 = re.search(r"\[\d+:\d+,(\d+):(\d+)\]", source).groups()
    return int(x0), int(x1)


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    for name in NAMES:
        make_smoke_dataset(name, root, n_train=24, n_test=8, size=32, seed=0)
    return root


def test_layout_ids_and_checksums(smoke_root):
    for name in NAMES:
        for split, n in (("train", 24), ("test", 8)):
            folder = smoke_root / name / split
            df = read_manifest(folder)
            assert list(df["id"]) == [f"{name}-{split}-{i:05d}" for i in range(n)]
            assert verify_manifest(folder) == n
            assert (df["width"] == 32).all() and (df["height"] == 32).all()
            img = load_image(folder / f"{name}-{split}-00000.png")
            assert img.shape == (32, 32, 3)


def test_byte_identical_across_runs(smoke_root, tmp_path):
    make_smoke_dataset("smoke_natural", tmp_path, n_train=24, n_test=8, size=32, seed=0)
    for split in ("train", "test"):
        for f in sorted((smoke_root / "smoke_natural" / split).iterdir()):
            assert (tmp_path / "smoke_natural" / split / f.name).read_bytes() == f.read_bytes(), f.name


def test_image_i_does_not_depend_on_the_count_and_seed_matters(smoke_root, tmp_path):
    make_smoke_dataset("smoke_portrait", tmp_path / "a", n_train=3, n_test=2, size=32, seed=0)
    make_smoke_dataset("smoke_portrait", tmp_path / "b", n_train=3, n_test=2, size=32, seed=1)
    for i in range(3):
        name = f"smoke_portrait-train-{i:05d}.png"
        assert (tmp_path / "a/smoke_portrait/train" / name).read_bytes() == (
            smoke_root / "smoke_portrait/train" / name
        ).read_bytes()
    a = read_manifest(tmp_path / "a/smoke_portrait/train")["sha256"]
    b = read_manifest(tmp_path / "b/smoke_portrait/train")["sha256"]
    assert not set(a) & set(b)


def test_rerun_with_fewer_images_removes_stale_files(tmp_path):
    make_smoke_dataset("smoke_natural", tmp_path, n_train=4, n_test=3, size=16)
    make_smoke_dataset("smoke_natural", tmp_path, n_train=2, n_test=1, size=16)
    assert sorted(p.name for p in (tmp_path / "smoke_natural/train").glob("*.png")) == [
        "smoke_natural-train-00000.png",
        "smoke_natural-train-00001.png",
    ]


def test_ood_sets_share_no_source_with_in_domain_sets(smoke_root):
    def sources(name):
        return [s for split in ("train", "test") for s in read_manifest(smoke_root / name / split)["source"]]

    natural = {_photo_of(s) for s in sources("smoke_natural")}
    ood_natural = {_photo_of(s) for s in sources("smoke_ood_natural")}
    assert natural and ood_natural and not natural & ood_natural
    faces = {_face_of(s) for s in sources("smoke_portrait")}
    ood_faces = {_face_of(s) for s in sources("smoke_ood_portrait")}
    assert faces and ood_faces and not faces & ood_faces


def test_train_and_test_share_no_source_pixels(smoke_root):
    train = read_manifest(smoke_root / "smoke_portrait/train")["source"]
    test = read_manifest(smoke_root / "smoke_portrait/test")["source"]
    assert not {_face_of(s) for s in train} & {_face_of(s) for s in test}
    # natural: within each photo, train columns end before any test column starts
    compared = 0
    for photo in {_photo_of(s) for s in read_manifest(smoke_root / "smoke_natural/test")["source"]}:
        train_cols = [_columns(s) for s in read_manifest(smoke_root / "smoke_natural/train")["source"] if _photo_of(s) == photo]
        test_cols = [_columns(s) for s in read_manifest(smoke_root / "smoke_natural/test")["source"] if _photo_of(s) == photo]
        if train_cols and test_cols:
            assert max(x1 for _, x1 in train_cols) <= min(x0 for x0, _ in test_cols)
            compared += 1
    assert compared >= 2


def test_images_are_varied_colour_images(smoke_root):
    imgs = np.stack([load_image(p) for p in sorted((smoke_root / "smoke_natural/train").glob("*.png"))])
    assert len({img.tobytes() for img in imgs}) == len(imgs)
    chroma = np.abs(imgs.astype(int) - imgs.mean(axis=3, keepdims=True)).mean()
    assert chroma > 3  # not greyscale
    assert imgs.std() > 20  # not flat


def test_bad_arguments():
    with pytest.raises(UnknownNameError, match="did you mean 'smoke_natural'"):
        make_smoke_dataset("smoke_natral", "unused", 1, 1)
    with pytest.raises(DataError):
        make_smoke_dataset("smoke_natural", "unused", -1, 1)
    with pytest.raises(DataError):
        make_smoke_dataset("smoke_natural", "unused", 1, 1, size=4)
