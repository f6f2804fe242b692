"""Guards on reading masks: size, binary values, polarity (converted and reported), pairing by id."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from moebius.masks import MaskError, generate_mask, read_mask, read_mask_set, resize_nearest, write_mask_set

IDS = ["p1", "p2", "p3", "p4"]


@pytest.fixture
def mask_set(tmp_path: Path) -> Path:
    write_mask_set("migan_256", IDS, tmp_path / "set", seed=4, size=32)
    return tmp_path / "set"


def expected(image_id: str) -> np.ndarray:
    return resize_nearest(generate_mask("migan_256", image_id, 4), 32)


def test_read_mask_set_pairs_by_id_not_order(mask_set: Path) -> None:
    wanted = ["p3", "p1"]
    masks, info = read_mask_set(mask_set, wanted, 32)
    assert list(masks) == wanted
    assert all(np.array_equal(masks[i], expected(i)) for i in wanted)
    assert not info.converted and info.polarity == "255_hole" and info.conversion == ""
    assert (info.protocol, info.version, info.n) == ("migan_256", "1", 2)


def test_wrong_size_is_rejected(mask_set: Path) -> None:
    with pytest.raises(MaskError, match="mask is 32x32, expected 64x64"):
        read_mask(mask_set / "p1.png", 64)
    with pytest.raises(MaskError, match="set size 32, expected 64"):
        read_mask_set(mask_set, ["p1"], 64)


def test_non_binary_and_multichannel_masks_are_rejected(tmp_path: Path) -> None:
    grey = np.zeros((16, 16), np.uint8)
    grey[3, 3], grey[4, 4] = 255, 128
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    with pytest.raises(MaskError, match="non-binary mask, values 128"):
        read_mask(tmp_path / "grey.png", 16)
    ones = (grey > 0).astype(np.uint8)  # a 0/1 mask saved without scaling
    cv2.imwrite(str(tmp_path / "ones.png"), ones)
    with pytest.raises(MaskError, match="non-binary"):
        read_mask(tmp_path / "ones.png", 16)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(MaskError, match="single-channel"):
        read_mask(tmp_path / "rgb.png", 16)
    with pytest.raises(MaskError, match="not found"):
        read_mask(tmp_path / "nope.png", 16)
    with pytest.raises(MaskError, match="unknown mask polarity"):
        read_mask(tmp_path / "grey.png", 16, polarity="1_hole")


def test_255_known_set_is_inverted_and_reported(mask_set: Path) -> None:
    # Rewrite the set the MAT / MI-GAN way: 255 = known.
    for i in IDS:
        png = cv2.imread(str(mask_set / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(mask_set / f"{i}.png"), 255 - png)
    manifest = pd.read_csv(mask_set / "manifest.csv", dtype=str)
    manifest["polarity"] = "255_known"
    manifest.to_csv(mask_set / "manifest.csv", index=False)
    masks, info = read_mask_set(mask_set, IDS, 32)
    assert all(np.array_equal(masks[i], expected(i)) for i in IDS)  # holes are holes again
    assert info.converted and info.polarity == "255_known"
    assert info.conversion == "inverted 255_known -> 255_hole"


@pytest.mark.parametrize("bad", ["1_hole", ""])
def test_unknown_polarity_is_rejected(mask_set: Path, bad: str) -> None:
    manifest = pd.read_csv(mask_set / "manifest.csv", dtype=str)
    manifest.loc[0, "polarity"] = bad
    manifest.to_csv(mask_set / "manifest.csv", index=False)
    with pytest.raises(MaskError, match="unknown polarity"):
        read_mask_set(mask_set, IDS, 32)


def test_mixed_polarity_is_rejected(mask_set: Path) -> None:
    manifest = pd.read_csv(mask_set / "manifest.csv", dtype=str)
    manifest.loc[0, "polarity"] = "255_known"
    manifest.to_csv(mask_set / "manifest.csv", index=False)
    with pytest.raises(MaskError, match="mixed polarities"):
        read_mask_set(mask_set, IDS, 32)


def test_missing_id_manifest_or_file_is_named(mask_set: Path, tmp_path: Path) -> None:
    with pytest.raises(MaskError, match="no mask for image id 'p9'"):
        read_mask_set(mask_set, ["p1", "p9"], 32)
    (mask_set / "p2.png").unlink()
    with pytest.raises(MaskError, match="p2.png"):
        read_mask_set(mask_set, ["p2"], 32)
    with pytest.raises(MaskError, match="no manifest"):
        read_mask_set(tmp_path / "empty", ["p1"], 32)
