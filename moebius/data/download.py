"""Resumable, verified downloads and safe archive extraction (standard library + tqdm only).

The full-scale datasets arrive as multi-gigabyte archives over plain HTTP (Places365's tarballs are
21-105 GB), so a transfer has to survive being cut off:

* bytes land in ``<name>.part``; a later call asks for the rest with an HTTP ``Range`` request
  (a server that ignores ``Range`` answers 200 and the file is fetched again from the start);
* a transfer that ends early (connection closed before ``Content-Length`` bytes) raises
  ``DownloadError`` and leaves the ``.part`` file in place for the next attempt;
* a complete transfer is checked (size, then sha256 / md5) before it is renamed onto its final
  name; a mismatch deletes the bad bytes and raises ``ChecksumError``. So a file under its final
  name is always complete and verified.

``extract`` refuses any member that would be written outside the target (absolute paths, ``..``,
links pointing out of the tree) and device files, and unpacks into a temporary directory that is
renamed into place, so a half-extracted tree never sits under the final name.
"""

from __future__ import annotations

import http.client
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from moebius.data.checksums import file_digest
from moebius.errors import ChecksumError, DataError, DownloadError, UnsafeArchiveError

_USER_AGENT = "moebius-repro/0.1 (+https://github.com/hustvl/Moebius reproduction)"
_CHUNK = 64 * 1024  # small enough that a cut-off read loses little, big enough to be cheap


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------


def part_path(dest: Path) -> Path:
    """Where the bytes of an unfinished download of ``dest`` are kept."""
    return dest.with_name(dest.name + ".part")


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    expected_size: int | None = None,
    progress: bool = True,
    *,
    md5: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` if present; verify; rename into place.

    Returns ``dest``. An existing ``dest`` that passes the given checks is reused without network
    traffic; one that fails them is deleted and fetched again. ``md5`` exists because Places365
    publishes md5 sums only.
    """
    dest = Path(dest)
    if dest.exists():
        try:
            _verify(dest, dest.name, sha256, md5, expected_size, keep_short=False)
            return dest
        except DataError:
            dest.unlink(missing_ok=True)  # a stale or corrupt copy (_verify removed it): fetch a verified one
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()  # more bytes than the file has: the partial belongs to something else
        offset = 0
    if expected_size is None or offset < expected_size:
        _fetch(url, part, offset, expected_size, progress, timeout)
    _verify(part, dest.name, sha256, md5, expected_size, keep_short=True)
    os.replace(part, dest)  # atomic on POSIX: the final name only ever holds verified bytes
    return dest


def _fetch(url: str, part: Path, offset: int, expected_size: int | None, progress: bool, timeout: float) -> None:
    """Append the bytes of ``url`` after ``offset`` to ``part`` (or rewrite it if Range is ignored)."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # nothing after `offset`: the partial already holds the whole file
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url}: {reason}") from exc

    with response:
        mode = "wb"
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(f"server answered range request for {url} from byte {start}, not {offset}")
            mode = "ab"
        else:
            offset = 0  # the server sent the whole file: start the partial over
        length_header = response.headers.get("Content-Length")
        remaining = int(length_header) if length_header is not None else None
        total = offset + remaining if remaining is not None else expected_size
        received = 0
        with open(part, mode) as fh, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress
        ) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead as exc:
                fh.write(exc.partial)
                received += len(exc.partial)
                raise DownloadError(_truncated(url, offset + received, total, part)) from exc
            except OSError as exc:  # connection reset, timeout mid-body
                raise DownloadError(_truncated(url, offset + received, total, part) + f" ({exc})") from exc
    # http.client returns b"" (not IncompleteRead) when the peer closes early: check the count.
    if remaining is not None and received < remaining:
        raise DownloadError(_truncated(url, offset + received, total, part))


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", value)
    return int(match.group(1)) if match else None


def _truncated(url: str, got: int, total: int | None, part: Path) -> str:
    of = f" of {total}" if total is not None else ""
    return f"download of {url} ended early at {got}{of} bytes; partial kept at {part}, run again to resume"


def verify_file(
    path: str | os.PathLike, sha256: str | None = None, md5: str | None = None, expected_size: int | None = None
) -> None:
    """Check a file placed by hand against what is known about it; ``ChecksumError`` if it differs.

    Unlike a download, the file is left in place on a mismatch: it is the user's copy.
    """
    path = Path(path)
    _verify(path, path.name, sha256, md5, expected_size, keep_short=False, delete=False)


def _verify(
    path: Path,
    name: str,
    sha256: str | None,
    md5: str | None,
    expected_size: int | None,
    keep_short: bool,
    delete: bool = True,
) -> None:
    """Check size and digests of ``path``; delete it on a mismatch (a short partial is kept)."""
    removed = "; the bad download was removed" if delete else f"; check or replace {path}"
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        if size < expected_size and keep_short:
            raise DownloadError(f"{name}: have {size} of {expected_size} bytes; partial kept at {path}")
        if delete:
            path.unlink()
        raise ChecksumError(f"{name}: size {size} bytes, expected {expected_size}{removed}")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            if delete:
                path.unlink()
            raise ChecksumError(f"{name}: {algorithm} {actual} does not match the expected {expected}{removed}")


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


def archive_kind(path: Path) -> str:
    """``"zip"`` or ``"tar"`` (plain or compressed), from the name, else from the magic bytes."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if re.search(r"\.(tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$", name):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise DataError(f"{path} is not a .zip or .tar archive")


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack ``archive`` (.zip, .tar, .tar.gz, ...) into the directory ``dest``; return ``dest``.

    Every member is checked before anything is written; an unsafe one raises
    ``UnsafeArchiveError``. If ``dest`` already exists it is returned as is: it can only have
    been put there by a completed extraction, since extraction happens in a sibling temporary
    directory that is renamed onto ``dest`` at the end.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        return dest
    kind = archive_kind(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
    try:
        if kind == "zip":
            _extract_zip(archive, tmp)
        else:
            _extract_tar(archive, tmp)
        os.replace(tmp, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"corrupt archive {archive}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _check_name(name: str, archive: Path) -> str:
    """The member name as a clean relative POSIX path, or ``UnsafeArchiveError``."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path")
    if ".." in posix.split("/"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} contains a '..' component")
    return posix


def _check_link(member: str, target: str, relative_to_member: bool, archive: Path) -> None:
    """Reject a link whose target, resolved inside the archive tree, leaves it."""
    target = target.replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise UnsafeArchiveError(f"{archive.name}: link {member!r} points to the absolute path {target!r}")
    base = posixpath.dirname(member) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive.name}: link {member!r} -> {target!r} points outside the archive")


def _extract_tar(archive: Path, root: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            name = _check_name(m.name, archive)
            if m.issym():
                _check_link(name, m.linkname, relative_to_member=True, archive=archive)
            elif m.islnk():
                # tar hardlink targets are relative to the archive root, not to the member
                _check_link(name, m.linkname, relative_to_member=False, archive=archive)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} is a device or special file")
        try:
            # The stdlib "data" filter repeats these checks and also drops set-uid bits: belt and braces.
            tf.extractall(root, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise UnsafeArchiveError(f"{archive.name}: {exc}") from exc


def _extract_zip(archive: Path, root: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        links: dict[str, str] = {}
        for info in infos:
            name = _check_name(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8")
                _check_link(name, target, relative_to_member=True, archive=archive)
                links[info.filename] = target
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: permission bits only (common)
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a device or special file")
        for info in infos:
            if info.filename in links:
                link = root / info.filename
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(links[info.filename], link)
            else:
                zf.extract(info, root)
