"""The ``manifest.csv`` beside every image folder (DESIGN.md, contracts between phases).

One row per image: ``id`` (the file is ``<id>.png``), ``source`` (where its pixels came from),
``sha256`` of the PNG bytes, ``width``, ``height``. Rows are sorted by id and written with a
fixed format, so the same images always give the same bytes, and the manifest's own hash is the
folder's data version: a result record that cites it pins exactly which pixels were scored.
The manifest is written last, so its presence marks a complete folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from moebius.atomic import write_text
from moebius.data.checksums import file_sha256
from moebius.errors import ChecksumError, DataError

MANIFEST_NAME = "manifest.csv"
COLUMNS = ("id", "source", "sha256", "width", "height")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # ids become file names: no separators


@dataclass(frozen=True)
class ManifestRow:
    """One image of a folder."""

    id: str
    source: str
    sha256: str
    width: int
    height: int


def check_id(image_id: str) -> str:
    """``image_id`` if it is usable as a file name stem, else ``DataError``."""
    if not isinstance(image_id, str) or not _ID_RE.match(image_id):
        raise DataError(f"invalid image id {image_id!r}: use letters, digits, '.', '_' and '-' only")
    return image_id


def write_manifest(directory: str | os.PathLike, rows: Iterable[ManifestRow]) -> Path:
    """Write ``<directory>/manifest.csv`` atomically, rows sorted by id; return its path."""
    rows = sorted(rows, key=lambda r: r.id)
    seen: set[str] = set()
    for r in rows:
        check_id(r.id)
        if r.id in seen:
            raise DataError(f"duplicate image id {r.id!r} in manifest for {directory}")
        seen.add(r.id)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.id, r.source, r.sha256, int(r.width), int(r.height)])
    path = Path(directory) / MANIFEST_NAME
    write_text(path, buf.getvalue())
    return path


def _manifest_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a manifest (a ``manifest.csv`` or the folder holding one).

    Raises ``DataError`` for a missing file, missing columns, empty or duplicate ids, ids that are
    not file-name safe, bad sha256 strings or non-positive sizes.
    """
    path = _manifest_path(path)
    if not path.exists():
        raise DataError(f"manifest not found: {path}")
    try:
        df = pd.read_csv(path, dtype={"id": str, "source": str, "sha256": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"unreadable manifest {path}: {str(exc).splitlines()[0]}") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"manifest {path} lacks column(s) {', '.join(missing)}")
    for image_id in df["id"]:
        try:
            check_id(image_id)
        except DataError as exc:
            raise DataError(f"manifest {path}: {exc}") from None
    dupes = sorted(df["id"][df["id"].duplicated()].unique())
    if dupes:
        raise DataError(f"manifest {path} repeats id(s) {', '.join(dupes[:5])}")
    bad_hash = [h for h in df["sha256"] if not re.fullmatch(r"[0-9a-f]{64}", str(h))]
    if bad_hash:
        raise DataError(f"manifest {path} has a malformed sha256 {bad_hash[0]!r}")
    for col in ("width", "height"):
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any() or (values < 1).any() or (values != values.round()).any():
            raise DataError(f"manifest {path}: column {col} must hold positive integers")
        df[col] = values.astype("int64")
    return df[list(COLUMNS)].reset_index(drop=True)


def verify_manifest(directory: str | os.PathLike) -> int:
    """Check that every listed ``<id>.png`` exists and matches its sha256; return the count."""
    directory = Path(directory)
    df = read_manifest(directory)
    for image_id, expected in zip(df["id"], df["sha256"]):
        image = directory / f"{image_id}.png"
        if not image.exists():
            raise DataError(f"{image} is listed in {directory / MANIFEST_NAME} but missing")
        actual = file_sha256(image)
        if actual != expected:
            raise ChecksumError(f"{image}: sha256 {actual[:12]}... does not match the manifest's {expected[:12]}...")
    return len(df)


def manifest_version(path: str | os.PathLike) -> str:
    """12 hex digits of the sha256 of a manifest file's bytes (an image or a mask manifest).

    The one version hash of the project: ``data_version`` (datasets, benchmarks) and the mask-set
    version of a metric record are both this. A missing file is a ``DataError``, never a placeholder
    version: a record must not claim data it cannot name.
    """
    path = Path(path)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except FileNotFoundError:
        raise DataError(f"manifest not found: {path}") from None


def data_version(directory: str | os.PathLike) -> str:
    """The data version of an image manifest (a ``manifest.csv`` or its folder), recorded in every result.

    The manifest is validated first (``read_manifest``): a malformed one is never versioned.
    """
    path = _manifest_path(directory)
    read_manifest(path)
    return manifest_version(path)


def row_for_png(image_id: str, source: str, png: bytes, width: int, height: int) -> ManifestRow:
    """The manifest row of PNG bytes just written as ``<id>.png``."""
    return ManifestRow(id=image_id, source=source, sha256=hashlib.sha256(png).hexdigest(), width=width, height=height)

