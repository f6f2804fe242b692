"""The Moebius authors' evaluation masks as a stored set (``moebius masks import``).

Source: the official README (github.com/hustvl/Moebius, "Evaluation Resources") shares "the masks of
the evaluation set" as one Google Drive folder (``moebius.data.registry.OFFICIAL_MASKS_URL``) and states
no layout, file naming, polarity or checksum. What the official code says about such files:

* ``infer/utils_dataset.py`` ``SimpleInferDataset`` pairs the i-th image with the i-th mask of the two
  folders, each sorted by file name (``pairing="sorted"`` reproduces that). The default ``"stem"``
  instead wants each mask's file stem to be an image id or the image's original file stem (FFHQ
  ``00042``, CelebA-HQ ``1``, ``Places365_val_00000001``), and refuses anything else: a sorted-order
  pairing is silently wrong as soon as the two orders differ (MAT #86 / #131).
* the pipeline (``removal/v1_2/pipeline.py``) reads a mask as greyscale, binarises it at 127.5 and
  inpaints where it is 255: ``polarity="255_hole"`` reads a file that way. The example masks in the
  repository (``data/masks/000000.png`` ...) look like MAT masks, whose strokes and boxes are 0 (MAT:
  0 = hole), i.e. fed as they are, the pipeline would inpaint their white part. Whoever imports a set
  must check which side is the hole (the import reports the mean hole ratio); ``"255_known"`` inverts.

Layout written (DESIGN.md's mask-set contract; ``read_mask_set`` reads it like a generated set):
``<out>/<id>.png`` (uint8, 255 = hole) + ``import.json`` + ``manifest.csv`` (written last), one row per
mask: ``id, source_file, source_sha256, sha256, hole_ratio, protocol ("official"), version, polarity
("255_hole"), source_polarity, size, grey_pixels, cv2_version``. ``grey_pixels`` counts source pixels
that were neither 0 nor 255 before binarising at 128 (the pipeline's threshold), so a lossy (JPEG)
set shows. ``sha256`` pins each stored PNG (``read_mask_set`` checks it). The sha256 of what was
imported (the archive's bytes; for a folder, a digest of its file names and contents) is recorded in
``checksums.json`` beside the sets (``masks/official/v1/checksums.json``) on first import (no published
checksum exists); a later import of other bytes for the same benchmark is refused.

Refused with a one-line ``MaskError`` before anything is written: a mask count, or a mask size, that
differs from the benchmark's images; mask files that pair with no image id (or ids with no mask);
two mask files with one name; unreadable files; unsafe archives (``moebius.data.download.extract``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from moebius.atomic import atomic_open, write_json
from moebius.data.registry import OFFICIAL_MASKS_URL
from moebius.errors import ChecksumError, DataError, MaskError
from moebius.masks.polarity import HOLE_255, KNOWN_255, POLARITIES
from moebius.masks.store import MANIFEST, encode_mask_png

OFFICIAL = "official"  # the "protocol" folder of imported sets: masks/official/v<VERSION>/<benchmark>/
VERSION = 1  # of this import layout; bump when the stored bytes of the same input would change
PAIRINGS = ("stem", "sorted")
MANIFEST_COLUMNS = ["id", "source_file", "source_sha256", "sha256", "hole_ratio", "protocol", "version",
                    "polarity", "source_polarity", "size", "grey_pixels", "cv2_version"]
IMPORT_RECORD = "import.json"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
_THRESHOLD = 128  # the pipeline's `mask >= 0.5` after `/ 255`, on uint8


def official_dir(masks_root: str | Path, benchmark: str) -> Path:
    """Where the imported set of ``benchmark`` lives: ``<masks_root>/official/v<VERSION>/<benchmark>``."""
    return Path(masks_root) / OFFICIAL / f"v{VERSION}" / benchmark


@dataclass(frozen=True)
class _MaskFile:
    path: Path
    rel: str  # POSIX path inside the archive or folder (recorded as source_file)


# ---------------------------------------------------------------------------------------------
# Reading the input
# ---------------------------------------------------------------------------------------------


def _input_digest(source: Path) -> str:
    """sha256 of an archive's bytes, or of a folder's sorted (relative name, file sha256) pairs."""
    from moebius.data.checksums import file_sha256

    if source.is_file():
        return file_sha256(source)
    h = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        h.update(path.relative_to(source).as_posix().encode("utf-8") + b"\0")
        h.update(bytes.fromhex(file_sha256(path)))
    return h.hexdigest()


def _mask_files(root: Path) -> list[_MaskFile]:
    """Image files under ``root`` (any depth) in name order; hidden files and ``__MACOSX`` skipped."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
            found.append(_MaskFile(path, rel.as_posix()))
    return found


def _header(mask: _MaskFile) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding (a decompression bomb never decodes)."""
    try:
        with Image.open(mask.path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise MaskError(f"official mask {mask.rel}: not a readable image ({reason})") from exc


def _read_hole(mask: _MaskFile, polarity: str) -> tuple[np.ndarray, int]:
    """(bool mask, True = hole; number of grey pixels) of one file, read as the pipeline reads it."""
    try:
        with Image.open(mask.path) as im:
            im.load()  # a truncated file fails here instead of decoding half blank
            grey = np.asarray(im.convert("L"))  # the pipeline's .convert("L")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise MaskError(f"official mask {mask.rel}: not a readable image ({reason})") from exc
    n_grey = int(np.count_nonzero((grey != 0) & (grey != 255)))
    white = grey >= _THRESHOLD
    return (white if polarity == HOLE_255 else ~white), n_grey


# ---------------------------------------------------------------------------------------------
# Pairing files with the benchmark's ids
# ---------------------------------------------------------------------------------------------


def _pair(files: list[_MaskFile], ids: list[str], source_stems: dict[str, str], pairing: str,
          benchmark: str) -> dict[str, _MaskFile]:
    """id -> mask file. ``stem``: by name (id or original stem); ``sorted``: i-th with i-th in name order."""
    if pairing == "sorted":
        by_name = sorted(ids, key=lambda i: (source_stems.get(i, i), i))
        return dict(zip(by_name, files))  # files are already in name order
    lookup: dict[str, str] = {i: i for i in ids}
    for image_id, stem in source_stems.items():
        if lookup.setdefault(stem, image_id) != image_id:  # an original stem that is another id: unusable
            raise MaskError(f"{benchmark}: the name {stem!r} is both an image id and another image's original "
                            f"file name; pair by order (--pairing sorted) instead")
    paired: dict[str, _MaskFile] = {}
    stray = []
    for f in files:
        image_id = lookup.get(PurePosixPath(f.rel).stem)
        if image_id is None:
            stray.append(f.rel)
        elif image_id in paired:
            raise MaskError(f"{benchmark}: official masks {paired[image_id].rel} and {f.rel} both name image "
                            f"{image_id!r}")
        else:
            paired[image_id] = f
    if stray:
        raise MaskError(f"{benchmark}: {len(stray)} official mask file(s) pair with no image id of the benchmark "
                        f"(first: {stray[0]}); mask names must be an image id or its original file name, "
                        f"or pair by order with --pairing sorted")
    return paired


# ---------------------------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------------------------


def _benchmark_images(images_dir: Path) -> tuple[list[str], int]:
    """(ids, side) of a benchmark folder; its images must all be square and of one size."""
    from moebius.data.manifest import read_manifest

    try:
        df = read_manifest(images_dir)
    except DataError as exc:
        raise MaskError(f"benchmark images: {exc}") from None
    sizes = set(zip(df["width"].tolist(), df["height"].tolist()))
    if len(sizes) != 1 or len({*next(iter(sizes))}) != 1:
        raise MaskError(f"{images_dir}: benchmark images must share one square size, found {sorted(sizes)[:3]}")
    return list(df["id"]), int(next(iter(sizes))[0])


def import_official_masks(
    source: str | Path,
    benchmark: str,
    images_dir: str | Path,
    out_dir: str | Path,
    *,
    polarity: str = HOLE_255,
    pairing: str = "stem",
    ledger_dir: str | Path | None = None,
) -> dict:
    """Import one benchmark's official masks from an archive (.zip / .tar[.gz]) or a folder.

    ``images_dir``: the benchmark's prepared images (``manifest.csv``: ids and size); ``out_dir``: the
    stored set (``official_dir``); ``ledger_dir``: where ``checksums.json`` lives (default: beside
    ``out_dir``, i.e. ``masks/official/v1/``). Returns a summary (count, size, mean hole ratio, input
    sha256, manifest sha256, ...), also written to ``import.json``.
    """
    from moebius.data.benchmarks import source_stems
    from moebius.data.checksums import ChecksumLedger
    from moebius.data.download import archive_kind, extract

    if polarity not in POLARITIES:
        raise MaskError(f"unknown polarity {polarity!r} (known: {', '.join(POLARITIES)})")
    if pairing not in PAIRINGS:
        raise MaskError(f"unknown pairing {pairing!r} (known: {', '.join(PAIRINGS)})")
    source, images_dir, out_dir = Path(source), Path(images_dir), Path(out_dir)
    if not source.exists():
        raise MaskError(f"official masks not found: {source}")
    if out_dir.exists() and not out_dir.is_dir():
        raise MaskError(f"mask set folder {out_dir} is a file, not a folder")
    ids, size = _benchmark_images(images_dir)
    ledger = ChecksumLedger(Path(ledger_dir) if ledger_dir is not None else out_dir.parent)
    digest = _input_digest(source)
    recorded = ledger.get(benchmark)
    if recorded is not None and recorded != digest:
        raise ChecksumError(f"{source}: sha256 {digest[:12]}... differs from the {recorded[:12]}... recorded for "
                            f"{benchmark} on first import ({ledger.path}); remove that entry to accept other masks")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Everything is built in a scratch folder beside the set and renamed into place at the end, so a
    # refused or failed import leaves the previous set (or none) and never a half-written one.
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".import", dir=out_dir.parent))
    try:
        if source.is_dir():
            root = source
        else:
            try:
                archive_kind(source)
            except DataError as exc:
                raise MaskError(f"official masks: {exc}") from None
            root = extract(source, scratch / "content")  # links, `..` names and bombs are refused
        files = _mask_files(root)
        if len(files) != len(ids):
            raise MaskError(f"{benchmark}: {len(files)} official mask file(s) in {source}, but the benchmark has "
                            f"{len(ids)} images ({images_dir}); refused")
        stems = [PurePosixPath(f.rel).stem for f in files]
        if pairing == "stem" and len(set(stems)) != len(stems):
            dup = next(s for s in stems if stems.count(s) > 1)
            raise MaskError(f"{benchmark}: two official mask files are named {dup!r}; refused")
        for f in files:  # every size before anything is written
            w, h = _header(f)
            if (w, h) != (size, size):
                raise MaskError(f"{benchmark}: official mask {f.rel} is {w}x{h}, the benchmark's images are "
                                f"{size}x{size}; refused")
        paired = _pair(files, ids, source_stems(images_dir), pairing, benchmark)
        missing = [i for i in ids if i not in paired]
        if missing:
            raise MaskError(f"{benchmark}: no official mask for image id {missing[0]!r}"
                            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; refused")
        info = {
            "benchmark": benchmark, "protocol": OFFICIAL, "version": VERSION, "n": len(ids), "size": size,
            "source": source.name, "source_sha256": digest, "url": OFFICIAL_MASKS_URL, "pairing": pairing,
            "source_polarity": polarity, "stored_polarity": HOLE_255, "converted": polarity == KNOWN_255,
            "conversion": f"inverted {KNOWN_255} -> {HOLE_255}" if polarity == KNOWN_255 else "",
            "threshold": _THRESHOLD,
        }
        manifest = _write_set(paired, ids, scratch / "set", polarity, info)
        if out_dir.exists():
            os.replace(out_dir, scratch / "previous")
        os.replace(scratch / "set", out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if recorded is None:
        ledger.record(benchmark, digest)
    return {**info, "dir": str(out_dir), "mean_hole_ratio": round(float(manifest["hole_ratio"].mean()), 6),
            "grey_pixels": int(manifest["grey_pixels"].sum()),
            "manifest_sha256": hashlib.sha256((out_dir / MANIFEST).read_bytes()).hexdigest()}


def _write_set(paired: dict[str, _MaskFile], ids: list[str], out_dir: Path, polarity: str,
               info: dict) -> pd.DataFrame:
    """Decode, binarise and store every mask in the new folder ``out_dir``; ``import.json`` (``info``),
    then ``manifest.csv`` last."""
    from moebius.data.checksums import file_sha256

    out_dir.mkdir(parents=True)
    rows = []
    for image_id in sorted(ids):
        f = paired[image_id]
        hole, n_grey = _read_hole(f, polarity)
        png = encode_mask_png(hole)
        with atomic_open(out_dir / f"{image_id}.png", "wb") as fh:
            fh.write(png)
        rows.append({"id": image_id, "source_file": f.rel, "source_sha256": file_sha256(f.path),
                     "sha256": hashlib.sha256(png).hexdigest(), "hole_ratio": float(hole.mean()),
                     "protocol": OFFICIAL, "version": VERSION, "polarity": HOLE_255, "source_polarity": polarity,
                     "size": info["size"], "grey_pixels": n_grey, "cv2_version": cv2.__version__})
    manifest = pd.DataFrame(rows)[MANIFEST_COLUMNS]
    write_json(out_dir / IMPORT_RECORD, info)
    with atomic_open(out_dir / MANIFEST, "w", encoding="utf-8", newline="") as fh:
        manifest.to_csv(fh, index=False, lineterminator="\n")
    return manifest
