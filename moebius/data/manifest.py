"""The ``manifest.csv`` beside every image folder (DESIGN.md, contracts between phases).

One row per image: ``id`` (the file is ``<id>.png``), ``source`` (where its pixels came from),
``sha256`` of the PNG bytes, ``width``, ``height``. Rows are sorted by id and written with a
fixed format, so the same images always give the same bytes, and the manifest's own hash is the
folder's data version: a result record that cites it pins exactly which pixels were scored.
The manifest is written last, so its presence marks a complete folder. The pin holds only if
the pixels are checked where they are used: ``verify_manifest`` (a folder), ``load_verified_image``
(one image as it is decoded) and ``moebius data verify`` do that (see "Verification" below).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moebius.atomic import write_text
from moebius.data.checksums import file_sha256
from moebius.data.preprocess import load_image
from moebius.errors import ChecksumError, DataError, MoebiusError

MANIFEST_NAME = "manifest.csv"
COLUMNS = ("id", "source", "sha256", "width", "height")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # ids become file names: no separators
MAX_ID_LENGTH = 200  # "<id>.png" and the atomic writer's temporary name stay under NAME_MAX (255)


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
    if not isinstance(image_id, str) or not _ID_RE.fullmatch(image_id):  # fullmatch: no trailing newline
        raise DataError(f"invalid image id {image_id!r}: use letters, digits, '.', '_' and '-' only")
    if len(image_id) > MAX_ID_LENGTH:
        raise DataError(f"invalid image id {image_id[:40]!r}… ({len(image_id)} characters; at most {MAX_ID_LENGTH})")
    return image_id


def check_ids(ids: Iterable[str], error: type[MoebiusError], where: str) -> None:
    """Every id usable as a file name stem (``check_id``), else ``error("<where>: <why>")``."""
    for image_id in ids:
        try:
            check_id(image_id)
        except DataError as exc:
            raise error(f"{where}: {exc}") from None


def read_table(path: Path, error: type[MoebiusError], missing: str, unreadable: str,
               dtype: Any = str) -> pd.DataFrame:
    """A CSV (a manifest and the like) with the columns ``dtype`` names kept as text ("007" is not 7) and
    no cell read as missing ("NA" is an id). No file → ``error(missing)``; one that does not parse, a
    folder in its place, an unreadable one → ``error("<unreadable>: <why>")``: each caller keeps its wording."""
    if not path.exists():
        raise error(missing)
    try:
        return pd.read_csv(path, dtype=dtype, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"{unreadable}: {(str(exc).splitlines() or [''])[0]}") from exc
    except OSError as exc:  # a folder named manifest.csv, an unreadable file
        raise error(f"{unreadable}: {exc.strerror or exc}") from exc


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
    df = read_table(path, DataError, f"manifest not found: {path}", f"unreadable manifest {path}",
                    dtype={"id": str, "source": str, "sha256": str})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"manifest {path} lacks column(s) {', '.join(missing)}")
    check_ids(df["id"], DataError, f"manifest {path}")
    dupes = sorted(df["id"][df["id"].duplicated()].unique())
    if dupes:
        raise DataError(f"manifest {path} repeats id(s) {', '.join(dupes[:5])}")
    bad_hash = [h for h in df["sha256"] if not re.fullmatch(r"[0-9a-f]{64}", str(h))]
    if bad_hash:
        raise DataError(f"manifest {path} has a malformed sha256 {bad_hash[0]!r}")
    for col in ("width", "height"):
        values = pd.to_numeric(df[col], errors="coerce")
        # isfinite: "1e400" parses as inf, and inf would pass the other tests and cast to a negative int64
        if values.isna().any() or not np.isfinite(values).all() or (values < 1).any() or (values != values.round()).any():
            raise DataError(f"manifest {path}: column {col} must hold positive integers")
        df[col] = values.astype("int64")
    return df[list(COLUMNS)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Verification: the pixels used are the pixels the data version names
# ---------------------------------------------------------------------------------------------
#
# A manifest's hash is the data version every result cites, so an image replaced, truncated or
# resized under the same manifest would be scored silently under the wrong version. Checks run
# wherever images enter: ``verify_manifest`` for a whole folder (evaluation, ``moebius data
# verify``), ``load_verified_image`` for one image as it is decoded (benchmark preparation,
# training streams). To make the folder check cheap enough for every use, a folder found intact
# is remembered for the life of the process by a fingerprint of its manifest bytes and every
# image's (device, inode, size, mtime_ns, ctime_ns): a later check only stats the files (a few
# microseconds each) and hashes again as soon as any of that changes. ctime cannot be set back
# by a user, so rewriting a file in place, copying over it or renaming onto it is always seen.

_INTACT: dict[str, bytes] = {}  # absolute folder -> fingerprint when last found intact (this process)
_INDEX: dict[str, tuple[tuple[int, ...], np.ndarray, np.ndarray]] = {}  # folder -> (manifest stat, ids, digests)


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _mismatch(image: Path, actual: str, expected: str) -> ChecksumError:
    return ChecksumError(
        f"{image}: sha256 {actual[:12]}... does not match the manifest's {expected[:12]}... "
        f"(replaced, truncated or resized since {image.parent / MANIFEST_NAME} was written)"
    )


def check_manifest(directory: str | os.PathLike) -> tuple[int, list[DataError]]:
    """(number of images listed, one error per missing or changed image) for a folder.

    Unlike ``verify_manifest`` it does not stop at the first problem. A manifest that cannot be
    read raises ``DataError``.
    """
    directory = Path(directory)
    if directory.name == MANIFEST_NAME and directory.is_file():
        directory = directory.parent  # the manifest itself was named
    elif directory.exists() and not directory.is_dir():
        raise DataError(f"{directory} is not a folder holding a {MANIFEST_NAME}")
    df = read_manifest(directory)
    manifest = directory / MANIFEST_NAME
    fingerprint = hashlib.sha256(hashlib.sha256(manifest.read_bytes()).digest())
    problems: list[DataError] = []
    present: list[tuple[Path, str]] = []
    for image_id, expected in zip(df["id"], df["sha256"]):
        image = directory / f"{image_id}.png"
        try:
            st = image.stat()
        except FileNotFoundError:
            problems.append(DataError(f"{image} is listed in {manifest} but missing"))
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(DataError(f"{image} is listed in {manifest} but is not a regular file"))
            continue
        fingerprint.update(struct.pack("<5q", *_stat_key(st)))
        present.append((image, expected))
    key = os.path.abspath(directory)
    if not problems and _INTACT.get(key) == fingerprint.digest():
        return len(df), []
    for image, expected in present:
        actual = file_sha256(image)
        if actual != expected:
            problems.append(_mismatch(image, actual, expected))
    if problems:
        _INTACT.pop(key, None)
    else:
        _INTACT[key] = fingerprint.digest()  # stats taken before hashing: a change meanwhile alters ctime
    return len(df), problems


def verify_manifest(directory: str | os.PathLike) -> int:
    """Check every listed ``<id>.png`` against its sha256; return the count, or raise on the first problem.

    ``DataError`` for a missing image or an unreadable manifest, ``ChecksumError`` for an image
    whose bytes changed; the message names the file (and how many other problems there are).
    Repeated calls in one process only stat the files while nothing changed (see above).
    """
    n, problems = check_manifest(directory)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s) in {directory})" if len(problems) > 1 else ""
        raise type(first)(f"{first}{more}")
    return n


def verify_dirs(directories: Iterable[str | os.PathLike]) -> tuple[int, list[str]]:
    """(images checked, one line per problem) over several folders; what ``moebius data verify`` prints."""
    total, lines = 0, []
    for directory in directories:
        try:
            n, problems = check_manifest(directory)
        except DataError as exc:
            lines.append(str(exc))
            continue
        total += n
        lines.extend(str(p) for p in problems)
    return total, lines


def expected_sha256(image: str | os.PathLike) -> str:
    """The sha256 that the manifest beside ``<folder>/<id>.png`` lists for it; ``DataError`` if none."""
    image = Path(image)
    folder, manifest = image.parent, image.parent / MANIFEST_NAME
    try:
        st = manifest.stat()
    except FileNotFoundError:
        raise DataError(f"{image}: no {MANIFEST_NAME} beside it to check it against") from None
    key = os.path.abspath(folder)
    entry = _INDEX.get(key)
    if entry is None or entry[0] != _stat_key(st):
        df = read_manifest(folder)
        # sorted byte-string ids and raw 32-byte digests: ~80 bytes an image, so the 1.8M-image
        # Places365 train split costs ~150 MB per DataLoader worker, not the ~1 GB of a dict
        ids = df["id"].to_numpy(dtype="S")
        order = np.argsort(ids, kind="stable")
        digests = np.frombuffer(bytes.fromhex("".join(df["sha256"])), dtype=np.uint8).reshape(-1, 32)
        entry = _INDEX[key] = (_stat_key(st), ids[order], digests[order])
    _, ids, digests = entry
    wanted = image.name.removesuffix(".png").encode("ascii", "replace")
    at = int(np.searchsorted(ids, wanted))
    if image.suffix != ".png" or at >= len(ids) or ids[at] != wanted:
        raise DataError(f"{image} is not listed in {manifest}")
    return digests[at].tobytes().hex()


def load_verified_image(image: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
    """Decode ``image`` after checking its bytes against ``sha256`` (default: its manifest's entry).

    The bytes hashed are the bytes decoded (one read), so the check costs one sha256 pass, a
    fraction of the PNG decoding it guards. ``ChecksumError`` names the file on a mismatch.
    """
    image = Path(image)
    expected = sha256 if sha256 is not None else expected_sha256(image)
    try:
        data = image.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{image} is listed in {image.parent / MANIFEST_NAME} but missing") from None
    except OSError as exc:
        raise DataError(f"cannot read image {image}: {exc.strerror or exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise _mismatch(image, actual, expected)
    return load_image(image, data)


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

