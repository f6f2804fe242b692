"""Reading masks back, with guards: size, binary values, polarity, and pairing by id.

Source: MASKS.md pitfalls (MAT #86/#131: mismatched file names silently break paired metrics;
MAT/MI-GAN store 1 = known, LaMa 1 = hole) and DESIGN.md's mask-set contract. Every check fails with
``MaskError`` and a one-line message; masks are looked up by id, never by sorted file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from moebius.errors import MaskError
from moebius.masks.polarity import HOLE_255, KNOWN_255, POLARITIES
from moebius.masks.store import MANIFEST


@dataclass(frozen=True)
class MaskSetInfo:
    """What ``read_mask_set`` read and what it did to it (goes into result records)."""

    mask_dir: str
    n: int  # masks returned
    polarity: str  # polarity recorded on disk
    converted: bool  # True when the set was inverted into the project convention
    conversion: str  # human-readable description of the conversion ("" when none)
    protocol: str  # from the manifest, "" if absent
    version: str  # from the manifest, "" if absent
    cv2_version: str  # from the manifest, "" if absent


def read_mask(path: Path, expected_size: int, polarity: str = HOLE_255) -> np.ndarray:
    """One stored mask as bool (True = hole); rejects missing files, wrong size, non-binary pixels."""
    path = Path(path)
    if polarity not in POLARITIES:
        raise MaskError(f"unknown mask polarity {polarity!r} (known: {', '.join(POLARITIES)})")
    if not path.is_file():
        raise MaskError(f"mask file not found: {path}")
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise MaskError(f"{path}: not a readable image")
    if pixels.ndim != 2:
        raise MaskError(f"{path}: expected a single-channel mask, got shape {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise MaskError(f"{path}: expected 8-bit pixels, got {pixels.dtype}")
    if pixels.shape != (expected_size, expected_size):
        h, w = pixels.shape
        raise MaskError(f"{path}: mask is {w}x{h}, expected {expected_size}x{expected_size}")
    values = np.unique(pixels)
    stray = values[(values != 0) & (values != 255)]
    if stray.size:
        shown = ", ".join(str(v) for v in stray[:5].tolist())
        raise MaskError(f"{path}: non-binary mask, values {shown}{' ...' if stray.size > 5 else ''} "
                        f"besides 0 and 255")
    return pixels == 255 if polarity == HOLE_255 else pixels == 0


def read_mask_set(mask_dir: Path, ids: list[str],
                  expected_size: int) -> tuple[dict[str, np.ndarray], MaskSetInfo]:
    """The masks of ``ids`` from a stored set, keyed by id, converted to True = hole.

    The manifest's ``polarity`` column decides the reading: ``255_hole`` as is, ``255_known``
    (MAT / MI-GAN's 1 = known) inverted and reported in the returned info; anything else is an error.
    """
    mask_dir = Path(mask_dir)
    manifest_path = mask_dir / MANIFEST
    if not manifest_path.is_file():
        raise MaskError(f"mask set has no manifest: {manifest_path}")
    # Ids stay strings ("007" is not 7; "NA" is not missing).
    manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    missing_cols = [c for c in ("id", "polarity") if c not in manifest.columns]
    if missing_cols:
        raise MaskError(f"{manifest_path}: missing column(s) {', '.join(missing_cols)}")
    polarities = sorted(set(manifest["polarity"]))
    unknown = [p for p in polarities if p not in POLARITIES]
    if unknown:
        raise MaskError(f"{manifest_path}: unknown polarity {unknown[0]!r} (known: {', '.join(POLARITIES)})")
    if len(polarities) != 1:
        raise MaskError(f"{manifest_path}: mixed polarities {polarities} in one set")
    polarity = polarities[0]
    if "size" in manifest.columns:
        sizes = sorted(set(manifest["size"]))
        if sizes != [str(expected_size)]:
            raise MaskError(f"{manifest_path}: set size {', '.join(sizes)}, expected {expected_size}")

    listed = set(manifest["id"])
    ids = [str(i) for i in ids]
    absent = [i for i in ids if i not in listed]
    if absent:
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise MaskError(f"mask set {mask_dir}: no mask for image id {absent[0]!r}{more}")
    masks = {i: read_mask(mask_dir / f"{i}.png", expected_size, polarity) for i in ids}

    def first(col: str) -> str:
        return str(manifest[col].iloc[0]) if col in manifest.columns and len(manifest) else ""

    converted = polarity == KNOWN_255
    info = MaskSetInfo(
        mask_dir=str(mask_dir),
        n=len(masks),
        polarity=polarity,
        converted=converted,
        conversion=f"inverted {KNOWN_255} -> {HOLE_255}" if converted else "",
        protocol=first("protocol"),
        version=first("version"),
        cv2_version=first("cv2_version"),
    )
    return masks, info
