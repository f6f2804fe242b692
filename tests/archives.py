"""Archives the tests build (data downloads, official masks): exactly the members a test needs, hostile ones
included."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """A tar of regular files, member names as given (``../escape.txt`` stays ``../escape.txt``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_of(path: Path, files: dict[str, bytes]) -> Path:
    """``tar_bytes(files)`` written to ``path``."""
    path.write_bytes(tar_bytes(files))
    return path


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A zip archive (as served or imported) holding ``entries``, name -> bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def chained_symlink_zip(path: Path) -> Path:
    """A zip whose links chain out of the target (l1 -> ., l1/l2 -> .., l1/l2/l3 -> ..) and a file written
    through them (l1/l2/l3/file): each link alone looks harmless, followed they climb two levels up."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, target in (("l1", "."), ("l1/l2", ".."), ("l1/l2/l3", "..")):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        zf.writestr("l1/l2/l3/file", b"pwned")
    return path
