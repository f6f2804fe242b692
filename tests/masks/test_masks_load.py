"""Guards on reading masks: size, binary values, polarity (converted and reported), pairing by id."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

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


# ---------------------------------------------------------------------------------------------
# Hostile sets: ids that are paths, damaged files, inverted polarity, broken manifests
# ---------------------------------------------------------------------------------------------


def _set_manifest(mask_set: Path, **changes) -> None:
    manifest = pd.read_csv(mask_set / "manifest.csv", dtype=str, keep_default_na=False)
    for column, values in changes.items():
        manifest[column] = values
    manifest.to_csv(mask_set / "manifest.csv", index=False)


@pytest.mark.hostile(
    "a mask manifest whose id is `../escape`, `a/b` or an absolute path, the file present there",
    "MaskError naming the manifest and the id, before any path is built from it",
)
@pytest.mark.parametrize("kind", ["dotdot", "subdir", "absolute"])
def test_mask_manifest_id_that_is_a_path_is_refused(mask_set: Path, tmp_path: Path, kind: str) -> None:
    bad = {"dotdot": "../escape", "subdir": "a/b", "absolute": str(tmp_path / "abs" / "escape")}[kind]
    target = mask_set / f"{bad}.png"  # where a path built from the id would point
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), np.zeros((32, 32), np.uint8))
    _set_manifest(mask_set, id=["p1", "p2", "p3", bad], hole_ratio=["0", "0", "0", "0"])  # p1..p3 unused here
    with pytest.raises(MaskError, match="invalid image id") as err:
        read_mask_set(mask_set, [bad], 32)
    assert repr(bad) in str(err.value) and str(mask_set / "manifest.csv") in str(err.value)


@pytest.mark.hostile(
    "a mask PNG cut short after its header (OpenCV decodes it without error as a half-blank mask)",
    "MaskError naming the file: not a readable PNG",
)
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_mask_is_refused(mask_set: Path, keep: float) -> None:
    path = mask_set / "p2.png"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MaskError, match="not a readable PNG") as err:
        read_mask(path, 32)
    assert str(path) in str(err.value)


def test_a_jpeg_named_png_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "m.png", format="JPEG")
    with pytest.raises(MaskError, match="not a PNG"):
        read_mask(tmp_path / "m.png", 16)


@pytest.mark.hostile(
    "a mask set saved inverted (255 = known) under a `255_hole` manifest, or 255 = hole under `255_known`",
    "MaskError naming the file, the pixels' hole ratio and the manifest's, and saying it looks inverted",
)
@pytest.mark.parametrize("declared", ["255_hole", "255_known"])
def test_inverted_mask_is_refused_naming_both_ratios(mask_set: Path, declared: str) -> None:
    if declared == "255_hole":  # the file is flipped; the manifest still says 255 = hole
        png = cv2.imread(str(mask_set / "p3.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(mask_set / "p3.png"), 255 - png)
    else:  # the files are ours (255 = hole); the manifest claims MAT's convention
        _set_manifest(mask_set, polarity="255_known")
    failing = "p3" if declared == "255_hole" else "p1"  # the first mask read that disagrees
    stored = float(expected(failing).mean())
    assert abs(stored - 0.5) > 0.05  # else an inversion cannot show in the ratio at all
    with pytest.raises(MaskError, match="looks inverted") as err:
        read_mask_set(mask_set, IDS, 32)
    message = str(err.value)
    assert str(mask_set / f"{failing}.png") in message
    assert f"{1 - stored:.4f} in the pixels but {stored:.4f}" in message


def test_hole_ratio_rounded_in_the_manifest_still_loads(mask_set: Path) -> None:
    """A foreign manifest that rounds the ratio to 2 decimals is within the tolerance."""
    manifest = pd.read_csv(mask_set / "manifest.csv")
    _set_manifest(mask_set, hole_ratio=[f"{r:.2f}" for r in manifest["hole_ratio"]])
    masks, _ = read_mask_set(mask_set, IDS, 32)
    assert all(np.array_equal(masks[i], expected(i)) for i in IDS)
    _set_manifest(mask_set, hole_ratio=[f"{r + 0.02:.4f}" for r in manifest["hole_ratio"]])  # off by 2 %
    with pytest.raises(MaskError, match="hole ratio"):
        read_mask_set(mask_set, IDS, 32)


@pytest.mark.hostile(
    "a mask manifest that is binary junk, lists no masks, repeats an id, or has a hole_ratio of 'n/a' or 1.7",
    "MaskError naming the manifest (no pandas traceback)",
)
@pytest.mark.parametrize("case, message", [
    ("junk", "unreadable mask manifest"),
    ("empty", "lists no masks"),
    ("duplicate", "duplicate id 'p1'"),
    ("ratio_text", "hole_ratio of 'p2' is not a number"),
    ("ratio_above_one", "hole_ratio of 'p2' is not a number in \\[0, 1\\]"),
])
def test_broken_mask_manifest_is_refused(mask_set: Path, case: str, message: str) -> None:
    path = mask_set / "manifest.csv"
    if case == "junk":
        path.write_bytes(bytes(range(256)) * 4)
    elif case == "empty":
        path.write_text(path.read_text().splitlines()[0] + "\n")
    elif case == "duplicate":
        _set_manifest(mask_set, id=["p1", "p2", "p3", "p1"])
    else:
        manifest = pd.read_csv(path, dtype=str)
        manifest.loc[1, "hole_ratio"] = "n/a" if case == "ratio_text" else "1.7"
        manifest.to_csv(path, index=False)
    with pytest.raises(MaskError, match=message) as err:
        read_mask_set(mask_set, ["p1", "p2"], 32)
    assert str(path) in str(err.value)
