"""Reading masks back, with guards: size, binary values, polarity, and pairing by id.

Source: MASKS.md pitfalls (MAT #86/#131: mismatched file names silently break paired metrics;
MAT/MI-GAN store 1 = known, LaMa 1 = hole) and DESIGN.md's mask-set contract. Every check fails with
``MaskError`` and a one-line message; masks are looked up by id, never by sorted file order.

Ids become file names, so each manifest id is checked (``moebius.data.manifest.check_id``) before a
path is built from it. A truncated PNG is refused: OpenCV decodes one silently as a partly blank
mask. A set whose pixels disagree with its manifest's ``hole_ratio`` (e.g. a set saved inverted,
255 = known, under a ``255_hole`` manifest) is refused too: the inversion would swap holes and known
pixels in every score without any other error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from moebius.data.manifest import check_ids, read_table
from moebius.errors import MaskError
from moebius.masks.official import OFFICIAL
from moebius.masks.polarity import HOLE_255, KNOWN_255, POLARITIES
from moebius.masks.store import MANIFEST

# How far a mask's pixel hole ratio may sit from its manifest's ``hole_ratio``: the store writes the
# exact ratio, but a foreign manifest may round it (to 2 decimals: ±0.005). One pixel more covers a
# ratio computed at another size. An inverted mask (ratio 1 - r) is caught unless r is within
# this of 0.5, where the inversion cannot be told from the ratio at all.
RATIO_TOLERANCE = 0.005


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
    """One stored mask as bool (True = hole); rejects missing, truncated or non-PNG files, wrong size,
    non-binary pixels."""
    path = Path(path)
    if polarity not in POLARITIES:
        raise MaskError(f"unknown mask polarity {polarity!r} (known: {', '.join(POLARITIES)})")
    try:
        if not path.is_file():
            raise MaskError(f"mask file not found: {path}")
        # PIL first: it reads the size without decoding (no decompression bomb reaches OpenCV) and
        # verify() walks every chunk, so a truncated file fails here instead of decoding half blank.
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
            if fmt != "PNG":
                raise MaskError(f"{path}: not a PNG (format {fmt})")
            if (w, h) != (expected_size, expected_size):
                raise MaskError(f"{path}: mask is {w}x{h}, expected {expected_size}x{expected_size}")
            im.verify()
    except MaskError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise MaskError(f"{path}: not a readable PNG ({reason})") from exc
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


def _read_manifest(manifest_path: Path) -> pd.DataFrame:
    """A mask set's manifest with every id checked as a file name; unreadable or bad → MaskError."""
    manifest = read_table(manifest_path, MaskError, f"mask set has no manifest: {manifest_path}",
                          f"unreadable mask manifest {manifest_path}")
    missing_cols = [c for c in ("id", "polarity") if c not in manifest.columns]
    if missing_cols:
        raise MaskError(f"{manifest_path}: missing column(s) {', '.join(missing_cols)}")
    check_ids(manifest["id"], MaskError, str(manifest_path))
    dupes = manifest["id"][manifest["id"].duplicated()]
    if len(dupes):
        raise MaskError(f"{manifest_path}: duplicate id {dupes.iloc[0]!r}")
    return manifest


def _stored_ratios(manifest: pd.DataFrame, manifest_path: Path) -> dict[str, float] | None:
    """``id -> hole_ratio`` from the manifest (None when the set has no such column)."""
    if "hole_ratio" not in manifest.columns:
        return None
    ratios = pd.to_numeric(manifest["hole_ratio"], errors="coerce")
    bad = manifest["id"][ratios.isna() | (ratios < 0) | (ratios > 1)]
    if len(bad):
        raise MaskError(f"{manifest_path}: hole_ratio of {bad.iloc[0]!r} is not a number in [0, 1]")
    return dict(zip(manifest["id"], ratios.astype(float)))


def _check_ratio(path: Path, hole: np.ndarray, stored: float, manifest_path: Path, polarity: str) -> None:
    """Refuse a mask whose pixels do not give the hole ratio its manifest records (inverted set?)."""
    actual = float(hole.mean())  # share of hole pixels, read with the manifest's polarity
    slack = RATIO_TOLERANCE + 1.0 / hole.size
    if abs(actual - stored) <= slack:
        return
    hint = ""
    if abs((1.0 - actual) - stored) <= slack:
        hint = f"; the file looks inverted (the manifest says polarity {polarity})"
    raise MaskError(f"{path}: hole ratio {actual:.4f} in the pixels but {stored:.4f} in {manifest_path}{hint}")


def _check_sha256(path: Path, expected: str, manifest_path: Path) -> None:
    """Refuse a mask whose bytes are not the ones its manifest lists (replaced since it was stored)."""
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise MaskError(f"mask file not found: {path}") from None
    if actual != expected:
        raise MaskError(f"{path}: sha256 {actual[:12]}... does not match {expected[:12]}... in {manifest_path} "
                        f"(replaced since the set was stored)")


def mask_set_settings(mask_dir: Path) -> dict[str, str]:
    """Which mask set scored a result (record ``settings``): ``mask_source``, ``mask_set`` and the
    sha256 of its manifest.

    A generated set is named by protocol, version and seed (it is reproducible from them); an imported
    official set by the sha256 of its manifest, which pins every mask's bytes. A set whose manifest
    names neither (made by hand) is ``unknown``, named by the manifest's hash alone.
    """
    manifest_path = Path(mask_dir) / MANIFEST
    try:
        data = manifest_path.read_bytes()
        manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise MaskError(f"unreadable mask manifest {manifest_path}: {(str(exc).splitlines() or [''])[0]}") from exc
    sha = hashlib.sha256(data).hexdigest()

    def first(col: str) -> str:
        return str(manifest[col].iloc[0]) if col in manifest.columns and len(manifest) else ""

    protocol = first("protocol")
    if protocol == OFFICIAL:
        return {"mask_source": "official", "mask_set": f"official v{first('version')} sha256:{sha}",
                "mask_manifest_sha256": sha}
    if protocol:
        return {"mask_source": "generated", "mask_set": f"{protocol} v{first('version')} seed {first('seed')}",
                "mask_manifest_sha256": sha}
    return {"mask_source": "unknown", "mask_set": f"sha256:{sha}", "mask_manifest_sha256": sha}


def read_mask_set(mask_dir: Path, ids: list[str],
                  expected_size: int) -> tuple[dict[str, np.ndarray], MaskSetInfo]:
    """The masks of ``ids`` from a stored set, keyed by id, converted to True = hole.

    The manifest's ``polarity`` column decides the reading: ``255_hole`` as is, ``255_known``
    (MAT / MI-GAN's 1 = known) inverted and reported in the returned info; anything else is an error.
    A ``hole_ratio`` column, when present, is the share of hole pixels (after any conversion) and
    must agree with the pixels to ``RATIO_TOLERANCE``.
    """
    mask_dir = Path(mask_dir)
    manifest_path = mask_dir / MANIFEST
    manifest = _read_manifest(manifest_path)
    if manifest.empty:
        raise MaskError(f"{manifest_path}: the set lists no masks")
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
    stored = _stored_ratios(manifest, manifest_path)
    digests = dict(zip(manifest["id"], manifest["sha256"])) if "sha256" in manifest.columns else None
    masks = {}
    for i in ids:  # every id here is a checked manifest id (``listed``)
        path = mask_dir / f"{i}.png"
        if digests is not None:  # imported sets pin their bytes (generated ones are reproducible instead)
            _check_sha256(path, digests[i], manifest_path)
        masks[i] = read_mask(path, expected_size, polarity)
        if stored is not None:
            _check_ratio(path, masks[i], stored[i], manifest_path, polarity)

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
