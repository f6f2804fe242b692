"""Resumable, verified downloads and safe archive extraction (standard library + the progress bar of moebius.progress only).

The full-scale datasets arrive as multi-gigabyte archives over plain HTTP (Places365's tarballs are
21-105 GB), so a transfer has to survive being cut off:

* bytes land in ``<name>.part``; a later call asks for the rest with an HTTP ``Range`` request
  (a server that ignores ``Range`` answers 200 and the file is fetched again from the start);
* a transfer that ends early (connection closed before ``Content-Length`` bytes) raises
  ``DownloadError`` and leaves the ``.part`` file in place for the next attempt;
* a partial the server calls complete (416) is kept only if the server states the file's length
  and it equals the partial's; a stale partial longer than the file is discarded and fetched again,
  so it cannot pass as complete when no checksum is known;
* a complete transfer is checked (size, then sha256 / md5) before it is renamed onto its final
  name; a mismatch deletes the bad bytes and raises ``ChecksumError``. So a file under its final
  name is always complete and verified.

``extract`` unpacks regular files and directories only. Links of any kind, devices and fifos,
names that leave the target, and archives that would expand past a size or ratio limit are refused
before anything is written; the rest is unpacked into a temporary directory that is renamed into
place, so a half-extracted tree never sits under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import ipaddress
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from moebius.data.checksums import file_digest
from moebius.errors import ChecksumError, DataError, DownloadError, UnsafeArchiveError
from moebius.progress import progress as progress_bar

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
    _check_digest("sha256", sha256, 64)
    _check_digest("md5", md5, 32)
    if dest.is_dir():
        raise DataError(f"download destination {dest} is a directory; give the file name to write")
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


def _check_digest(algorithm: str, value: str | None, length: int) -> None:
    """A malformed expected digest is refused before any traffic (it could never match)."""
    if value is not None and not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value):
        raise DataError(f"expected {algorithm} must be {length} hex digits, got {value!r}")


def _fetch(url: str, part: Path, offset: int, expected_size: int | None, progress: bool, timeout: float) -> None:
    """Append the bytes of ``url`` after ``offset`` to ``part`` (or rewrite it if Range is ignored)."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = _urlopen(urllib.request.Request(url, headers=headers), timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Nothing after `offset`. That means "complete" only if the server says the file has
            # exactly `offset` bytes: a stale partial longer than the file (or a server that will
            # not say) would otherwise pass as complete when no checksum is known. Start over.
            if _content_range_total(exc.headers.get("Content-Range", "")) == offset:
                return
            part.unlink(missing_ok=True)
            return _fetch(url, part, 0, expected_size, progress, timeout)
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        raise DownloadError(f"cannot reach {url}: {reason}") from exc
    except ValueError as exc:  # "unknown url type", an unparsable host or port
        raise DownloadError(f"invalid URL {url!r}: {exc}") from exc

    with response:
        mode = "wb"
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(f"server answered range request for {url} from byte {start}, not {offset}")
            mode = "ab"
        else:
            offset = 0  # the server sent the whole file: start the partial over
        length_header = response.headers.get("Content-Length", "")
        remaining = int(length_header) if length_header.strip().isdigit() else None  # absent or garbled: unknown
        total = offset + remaining if remaining is not None else expected_size
        received = 0
        with open(part, mode) as fh, progress_bar(
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


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # an opener that ignores *_proxy


def _urlopen(request: urllib.request.Request, timeout: float):
    """Open ``request``; a server on this machine (a local mirror, the rehearsal's) is reached directly.

    urllib sends every host, 127.0.0.1 included, through ``http_proxy`` unless ``no_proxy`` names it;
    clusters often set the first and not the second, and the proxy cannot reach our loopback server.
    """
    if _is_loopback(urllib.parse.urlsplit(request.full_url).hostname):
        return _DIRECT.open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        return False


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", value)
    return int(match.group(1)) if match else None


def _content_range_total(value: str) -> int | None:
    """The complete length in ``Content-Range: bytes */<length>`` (or ``bytes a-b/<length>``), if stated."""
    match = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)\s*$", value)
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

DEFAULT_MAX_RATIO = 20.0
"""Most an archive may expand (unpacked bytes / archive bytes) before it counts as a bomb.

Photographs are already compressed (JPEG, PNG), so image archives unpack to about their own size;
the most compressible thing the registry fetches is annotation JSON in a zip, a few times smaller
than its text. A zip bomb expands about a thousand times (deflate's limit is ~1032)."""

RATIO_FLOOR = 64 << 20
"""Unpacked totals up to this many bytes are never refused for their ratio: they cannot fill a disk."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def archive_kind(path: Path) -> str:
    """``"zip"`` or ``"tar"`` (plain or compressed), from the name, else from the magic bytes."""
    if not path.is_file():
        raise DataError(f"{path} is not a .zip or .tar archive (not a file)")
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


@dataclass(frozen=True)
class _Entry:
    """One member to write: its checked relative POSIX path, kind, declared size and archive record."""

    path: str
    is_dir: bool
    size: int
    member: tarfile.TarInfo | zipfile.ZipInfo


class _Plan:
    """The members to write, checked one by one as they are listed (so a bomb stops at its first header).

    Refuses names that leave the target, a file listed twice, a file where a directory must be, and a
    running total over the size limit. Nothing is written while a plan is made.
    """

    def __init__(self, archive: Path, max_total: int | None, max_ratio: float, ratio_floor: int) -> None:
        self.archive = archive
        self.entries: list[_Entry] = []
        self.total = 0
        self._files: set[str] = set()
        self._dirs: set[str] = set()
        self._size = archive.stat().st_size
        self._max_ratio = max_ratio
        self._ratio_limit = max(ratio_floor, int(max_ratio * self._size))
        self._max_total = max_total

    def add(self, raw_name: str, is_dir: bool, size: int, member: tarfile.TarInfo | zipfile.ZipInfo) -> None:
        path = _clean_name(raw_name, self.archive)
        if path is None:
            if is_dir:
                return  # "./": the target itself
            raise UnsafeArchiveError(f"{self.archive.name}: member {raw_name!r} has an empty name")
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self._files:
                raise DataError(f"{self.archive.name}: member {raw_name!r} lies under {parent!r}, which is a file")
            self._dirs.add(parent)
        if is_dir:
            if path in self._files:
                raise DataError(f"{self.archive.name}: {path!r} is listed as both a file and a directory")
            self._dirs.add(path)
        else:
            if path in self._files:
                raise DataError(f"{self.archive.name}: file {path!r} appears twice")
            if path in self._dirs:
                raise DataError(f"{self.archive.name}: {path!r} is listed as both a file and a directory")
            self._files.add(path)
            self.total += size
            if self._max_total is not None and self.total > self._max_total:
                raise UnsafeArchiveError(
                    f"{self.archive.name}: unpacks to more than the limit of {self._max_total} bytes; refused before writing"
                )
            if self.total > self._ratio_limit:
                raise UnsafeArchiveError(
                    f"{self.archive.name}: would expand to at least {self.total} bytes, "
                    f"{self.total / max(self._size, 1):.0f} times its {self._size} bytes (limit {self._max_ratio:g}; "
                    "a zip bomb?); refused before writing. Pass a larger max_ratio if it is genuine"
                )
        self.entries.append(_Entry(path, is_dir, size, member))


def extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_total: int | None = None,
    max_ratio: float = DEFAULT_MAX_RATIO,
    ratio_floor: int = RATIO_FLOOR,
) -> Path:
    """Unpack ``archive`` (.zip, .tar, .tar.gz, ...) into the directory ``dest``; return ``dest``.

    Only regular files and directories are unpacked. Refused with ``UnsafeArchiveError``, before
    anything is written: any link (symbolic or hard: dataset archives need none, and links are
    how CVE-2025-4517 and chained-symlink zips escape the target on Pythons whose
    ``filter="data"`` is not fixed, i.e. before 3.11.13), devices, fifos, sparse files, names that
    are absolute, carry a drive letter, a ``..`` component or a NUL byte, and archives that unpack
    to more than ``max_total`` bytes or more than ``max_ratio`` times their own size (beyond
    ``ratio_floor`` bytes). Each file is then created through directory descriptors opened with
    ``O_NOFOLLOW``, one path component at a time, so no component can be a symlink, and with
    ``O_EXCL``; set-uid bits and archive permissions are dropped (0644 / 0755 before umask).

    Unpacking happens in a temporary directory beside ``dest`` that is renamed onto it at the end,
    and removed on any failure, so nothing half-extracted is left. If ``dest`` already exists it
    is returned as is: only a completed extraction can have put it there.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        return dest
    kind = archive_kind(archive)
    plan = _Plan(archive, max_total, max_ratio, ratio_floor)
    try:
        with _open(archive, kind) as (members, reader):
            for raw_name, is_dir, size, member in members:
                plan.add(raw_name, is_dir, size, member)
            dest.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(dest.parent).free
            if plan.total > free:
                raise DataError(f"disk full: {archive.name} unpacks to {plan.total} bytes, {free} free at {dest.parent}")
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
            try:
                _write_tree(plan, tmp, reader)
                os.replace(tmp, dest)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise DataError(f"corrupt archive {archive}: {exc}") from exc
    except OSError as exc:
        if exc.errno is not None:
            raise  # a real file-system error (disk full, permissions): the CLI reports it
        raise DataError(f"corrupt archive {archive}: {exc}") from exc  # gzip / bz2 stream errors carry no errno
    return dest


@contextlib.contextmanager
def _open(archive: Path, kind: str) -> Iterator[tuple[Iterator[tuple], Callable[[_Entry], IO[bytes]]]]:
    """(members as (name, is_dir, size, record), a function opening a member's bytes) of an archive."""
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            yield _zip_members(zf, archive), lambda e: zf.open(e.member)
    else:
        with tarfile.open(archive) as tf:
            yield _tar_members(tf, archive), lambda e: tf.extractfile(e.member)


def _tar_members(tf: tarfile.TarFile, archive: Path) -> Iterator[tuple]:
    for m in tf:  # one header at a time: a huge declared size is refused before the rest is read
        if m.issym():
            raise UnsafeArchiveError(
                f"{archive.name}: member {m.name!r} is a symbolic link (-> {m.linkname!r}); dataset archives need none"
            )
        if m.islnk():
            raise UnsafeArchiveError(
                f"{archive.name}: member {m.name!r} is a hard link (-> {m.linkname!r}); dataset archives need none"
            )
        if m.isdir():
            yield m.name, True, 0, m
        elif m.isreg() and not m.issparse():
            yield m.name, False, m.size, m
        else:
            raise UnsafeArchiveError(f"{archive.name}: member {m.name!r} is a device or special file")


def _zip_members(zf: zipfile.ZipFile, archive: Path) -> Iterator[tuple]:
    for info in zf.infolist():
        mode = info.external_attr >> 16  # Unix st_mode, when the archiver stored one
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"{archive.name}: member {info.filename!r} is a symbolic link; dataset archives need none"
            )
        is_dir = info.is_dir() or stat.S_ISDIR(mode)
        if not is_dir and stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: permission bits only (common)
            raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a device or special file")
        if info.flag_bits & 0x1:
            raise DataError(f"{archive.name}: member {info.filename!r} is encrypted; decrypt the archive first")
        if info.compress_type not in _ZIP_METHODS:
            raise DataError(f"{archive.name}: member {info.filename!r} uses unsupported compression {info.compress_type}")
        yield info.filename, is_dir, 0 if is_dir else info.file_size, info


def _clean_name(name: str, archive: Path) -> str | None:
    """The member name as a relative POSIX path without '.' or empty parts (None: the root itself)."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has a NUL byte in its name")
    posix = name.replace("\\", "/")  # a Windows-made archive's separator
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} contains a '..' component")
    return "/".join(parts) or None


def _write_tree(plan: _Plan, root: Path, reader: Callable[[_Entry], IO[bytes]]) -> None:
    """Create the planned directories and files under ``root`` (descriptor-relative, never following links)."""
    root_fd = os.open(root, _DIR_FLAGS)
    current: tuple[tuple[str, ...], int] | None = None  # the last parent directory: members come grouped
    try:
        for entry in plan.entries:
            parts = tuple(entry.path.split("/"))
            if entry.is_dir:
                os.close(_open_dir(root_fd, parts, plan.archive))
                continue
            if current is None or current[0] != parts[:-1]:
                if current is not None:
                    os.close(current[1])
                    current = None
                current = (parts[:-1], _open_dir(root_fd, parts[:-1], plan.archive))
            _write_file(current[1], parts[-1], entry, reader, plan.archive)
    finally:
        if current is not None:
            os.close(current[1])
        os.close(root_fd)


def _open_dir(root_fd: int, parts: tuple[str, ...], archive: Path) -> int:
    """A descriptor of ``root/<parts>``, made as needed; each component must be a real directory."""
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)  # ELOOP on a symlink, ENOTDIR on a file
            except OSError as exc:
                where = "/".join(parts[: i + 1])
                raise UnsafeArchiveError(f"{archive.name}: {where!r} is not a plain directory ({exc.strerror})") from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_file(dir_fd: int, name: str, entry: _Entry, reader: Callable[[_Entry], IO[bytes]], archive: Path) -> None:
    """Copy one member into a new file ``name`` of ``dir_fd``, never more bytes than its header declared."""
    try:
        fd = os.open(name, _NEW_FILE_FLAGS, 0o644, dir_fd=dir_fd)
    except (FileExistsError, OSError) as exc:
        if exc.errno not in (errno.EEXIST, errno.ELOOP):
            raise
        raise UnsafeArchiveError(f"{archive.name}: {entry.path!r} already exists or is a link") from exc
    written = 0
    with os.fdopen(fd, "wb") as out, reader(entry) as src:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > entry.size:
                raise UnsafeArchiveError(f"{archive.name}: member {entry.path!r} holds more than its declared {entry.size} bytes")
            out.write(chunk)
    if written != entry.size:
        raise DataError(f"corrupt archive {archive}: member {entry.path!r} has {written} of {entry.size} bytes")
