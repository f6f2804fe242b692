"""Atomic file writes: a file under its final name is always complete, durable and readable.

Every writer in the package goes through here, so that a killed job never leaves a half-written
PNG, CSV, JSON or checkpoint behind for Snakemake or DVC to mistake for a finished output. The recipe
is the classic one: write a temporary file beside the target, fsync it, rename it onto the target
(atomic on POSIX within one filesystem), fsync the directory so that the rename survives a crash.

Temporary files are named ``.<name>.<host>.<pid>.<random>.tmp``: hidden, ignored by DVC
(``.dvcignore``: ``*.tmp``), and carrying their writer, so that ``clean_stale_tmp`` can tell a
temporary left by a killed job (its process is gone) from one that a live writer is still filling.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from moebius.errors import MoebiusError


def _host_token() -> str:
    """Host name (dots replaced, so the name parses from the right) plus the pid namespace on Linux."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
    with contextlib.suppress(OSError):
        host += f"-{os.stat('/proc/self/ns/pid').st_ino:x}"
    return host


# The host part keeps pids of different machines apart on a shared filesystem (SLURM nodes writing to
# one NFS folder), and the pid namespace those of containers that share a host name: a pid is only
# checked where it means the same process.
_HOST = _host_token()
_TMP_RE = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp$")
_NAME_KEEP = 120  # of the target's name in the temporary name: the whole stays under NAME_MAX (255)

# A temporary of another host cannot have its pid checked; it is removed only once it is this old
# (one write lasts seconds to minutes; a day leaves room for clock skew between NFS clients).
STALE_AFTER_S = 24 * 3600.0

_swept: set[str] = set()  # folders already swept by this process (one scandir per folder per process)
_swept_lock = threading.Lock()


def tmp_name(target: str | os.PathLike) -> str:
    """A fresh temporary name for ``target``: ``.<name>.<host>.<pid>.<random>.tmp``."""
    name = Path(target).name[:_NAME_KEEP]
    return f".{name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def clean_stale_tmp(folder: str | os.PathLike, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temporaries of this module in ``folder`` (not below it) whose writer is gone; return them.

    Only names of this module's own pattern are considered. One written on this host is stale when its
    process no longer exists (a killed job); a reused pid only delays the clean-up, it never removes a
    live writer's file. One written on another host is stale once its mtime is ``stale_after_s`` old.
    ``atomic_path`` calls this once per folder per process, so every long job that writes through this
    module sweeps the folders it writes into.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _TMP_RE.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if match["host"] == _HOST:
                stale = not _pid_alive(int(match["pid"]))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > stale_after_s
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:
            continue  # its writer renamed it into place meanwhile
    return removed


def _sweep_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    try:
        clean_stale_tmp(folder)
    except OSError:
        pass  # housekeeping only: an unreadable folder must not fail the write itself


def _create_tmp(final: Path) -> Path:
    """Create an empty temporary beside ``final``, mode 0666 less the umask (like ``open(…, "w")``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = final.parent / tmp_name(final)
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(final))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; skipped where the filesystem cannot fsync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except PermissionError:
        return  # a write-only folder: the file itself is synced, the rename stays best effort
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


# Writers that report a failed write with their own exception type: safetensors (Rust) says
# "… (os error 28)"; torch.save only says "unexpected pos …", so for it the filesystem is asked.
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _write_errno(exc: BaseException, folder: Path) -> int | None:
    """The errno behind a writer's non-OSError failure, when there evidently is one, else None."""
    found = _RUST_OS_ERROR.search(str(exc))
    if found and int(found[1]) in _WRITE_ERRNOS:
        return int(found[1])
    try:
        return errno.ENOSPC if os.statvfs(folder).f_bavail == 0 else None
    except OSError:
        return None


def _name_target(exc: OSError, final: Path) -> None:
    """Let the error name the output the user asked for, not one of our temporaries (or nothing at all)."""
    named = Path(os.fsdecode(exc.filename)) if exc.filename is not None else None
    if named is None or (named.parent == final.parent and _TMP_RE.match(named.name)):
        exc.filename = str(final)
        exc.filename2 = None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; fsync it and rename it onto ``path`` only if the block succeeds.

    An ``OSError`` (disk full, read-only, permission) names ``path``. A writer that reports a full disk
    with its own exception type (``torch.save``'s RuntimeError, safetensors' SafetensorError) is turned
    into ``OSError(ENOSPC, path)`` when its message carries the errno or the filesystem indeed has no
    space left, so that the CLI prints one ``disk full: <path>`` line for it too; the original error
    stays chained. The new file gets the mode ``open(…, "w")`` would give it (0666 less the umask).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(final.parent)
    tmp: Path | None = None
    try:
        tmp = _create_tmp(final)
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)  # atomic on POSIX within one filesystem
        tmp = None
        _fsync_dir(final.parent)
    except OSError as exc:
        _name_target(exc, final)
        raise
    except MoebiusError:
        raise
    except Exception as exc:
        code = _write_errno(exc, final.parent)
        if code is not None:
            raise OSError(code, os.strerror(code), str(final)) from exc
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` when the block exits cleanly."""
    # The file closes (flushes) before atomic_path resumes to fsync and rename it.
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
