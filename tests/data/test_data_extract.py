"""extract(): no links, no devices, nothing outside the target, bounded size; all or nothing.

Every hostile archive is checked twice: the error type, and a snapshot of the whole test folder
(a sentinel file above the target included) taken before and after, so nothing was written, changed
or left behind anywhere, not only under the target's name.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from archives import chained_symlink_zip
from local_http_server import http_server  # noqa: F401 (pytest fixture)

from moebius.data.download import download, extract
from moebius.errors import DataError, UnsafeArchiveError

FILES = {"top.txt": b"hello", "sub/inner.bin": bytes(range(256)) * 4}
SENTINEL = b"sentinel: must never change"


def _tar(path: Path, members: list[tarfile.TarInfo], payloads: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for info in members:
            data = payloads.get(info.name)
            if data is not None and info.isreg():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    return info


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _good_tar(path: Path, mode: str = "w") -> Path:
    return _tar(path, [_file(n) for n in FILES], FILES, mode)


def _zip(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` (links not followed): file bytes, link targets, 'dir'."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link -> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


@pytest.fixture
def arena(tmp_path):
    """A test folder with a sentinel two and three levels above the target; the target lies deep."""
    (tmp_path / "sentinel").write_bytes(SENTINEL)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (tmp_path / "a" / "sentinel").write_bytes(SENTINEL)
    return tmp_path, deep / "out"


def _refused(archive: Path, dest: Path, root: Path, error=UnsafeArchiveError, match: str | None = None, **limits):
    """extract() raises ``error`` and the whole folder ``root`` is exactly as before."""
    before = _snapshot(root)
    with pytest.raises(error, match=match):
        extract(archive, dest, **limits)
    assert not dest.exists()
    assert _snapshot(root) == before  # no new file, no changed file, no leftover temp dir anywhere
    assert (root / "sentinel").read_bytes() == SENTINEL


# --- what still works -------------------------------------------------------------------------


@pytest.mark.parametrize("name,mode", [("good.tar", "w"), ("good.tar.gz", "w:gz")])
def test_tar_extracts_all_members(tmp_path, name, mode):
    archive = _good_tar(tmp_path / name, mode)
    out = extract(archive, tmp_path / "out")
    for rel, data in FILES.items():
        assert (out / rel).read_bytes() == data
    assert {p.name for p in tmp_path.iterdir()} == {name, "out"}  # the temp dir was renamed away


def test_zip_extracts_all_members_and_directories(tmp_path):
    archive = _zip(tmp_path / "good.zip", {"emptydir/": b"", "./dot/x.txt": b"x", **FILES})
    out = extract(archive, tmp_path / "out")
    for rel, data in FILES.items():
        assert (out / rel).read_bytes() == data
    assert (out / "emptydir").is_dir() and (out / "dot" / "x.txt").read_bytes() == b"x"


def test_set_uid_bits_are_not_extracted(tmp_path):
    info = _file("tool")
    info.mode = 0o4755
    out = extract(_tar(tmp_path / "suid.tar", [info], {"tool": b"#!"}), tmp_path / "out")
    assert not (out / "tool").stat().st_mode & (stat.S_ISUID | stat.S_ISGID)


def test_existing_destination_is_left_alone(tmp_path):
    archive = _good_tar(tmp_path / "good.tar")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "marker").write_text("done")
    assert extract(archive, dest) == dest
    assert [p.name for p in dest.iterdir()] == ["marker"]


# --- links of any kind ------------------------------------------------------------------------


@pytest.mark.hostile(
    "a 300-byte zip chaining symlinks out of --dest (l1 -> ., l1/l2 -> .., l1/l2/l3 -> .., l1/l2/l3/file)",
    "UnsafeArchiveError before anything is written; nothing outside --dest changes",
)
def test_zip_chained_symlinks_are_refused(arena):
    root, dest = arena
    archive = chained_symlink_zip(root / "chain.zip")
    assert archive.stat().st_size < 600
    _refused(archive, dest, root, match="symbolic link")
    assert not (root / "a" / "file").exists() and not (root / "file").exists()


@pytest.mark.hostile(
    "zip symlink members, even ones pointing inside the archive or outside it (../.., /etc)",
    "UnsafeArchiveError: datasets need no links; nothing written",
)
@pytest.mark.parametrize("target", ["top.txt", "../../outside", "/etc"], ids=["inside", "dotdot", "absolute"])
def test_zip_symlinks_are_refused(arena, target):
    root, dest = arena
    _refused(_zip(root / "link.zip", FILES, symlinks={"sub/link": target}), dest, root, match="symbolic link")


@pytest.mark.hostile(
    "tar with a symlink and a hardlink member (inside and outside targets)",
    "UnsafeArchiveError naming the link; nothing written outside or inside",
)
@pytest.mark.parametrize(
    "member",
    [
        _link("sub/up", "../top.txt"),
        _link("hard", "top.txt", tarfile.LNKTYPE),
        _link("evil_link", "../../outside"),
        _link("abs_link", "/etc/passwd"),
        _link("hard_out", "../sentinel", tarfile.LNKTYPE),
    ],
    ids=["symlink-inside", "hardlink-inside", "symlink-out", "symlink-abs", "hardlink-out"],
)
def test_tar_links_are_refused(arena, member):
    root, dest = arena
    members = [_file(n) for n in FILES] + [member, _file("after.txt")]
    archive = _tar(root / "links.tar", members, {**FILES, "after.txt": b"pwned"})
    _refused(archive, dest, root, match="link")


def _cve_2025_4517_tar(path: Path, levels_up: int) -> Path:
    """The structure of the published CVE-2025-4517 proof of concept, built here with tarfile.

    Sixteen nested 247-character directories, each reachable through a one-letter symlink, so that
    the short path a/b/.../p resolves to a path longer than PATH_MAX (os.path.realpath then stops
    resolving and the stdlib "data" filter of Python < 3.11.13 judges it lexically); a link at the
    bottom climbs back to the top with ../ x 16; ``escape`` climbs ``levels_up`` further; a hardlink
    through ``escape`` then lets a regular member overwrite the outside file ``sentinel``.
    """
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    members: list[tarfile.TarInfo] = []
    deep = ""
    for letter in steps:
        members.append(_dir(posixpath.join(deep, comp)))
        members.append(_link(posixpath.join(deep, letter), comp))
        deep = posixpath.join(deep, comp)
    short = "/".join(steps)
    long_link = posixpath.join(short, "l" * 254)
    members.append(_link(long_link, "../" * len(steps)))
    members.append(_link("escape", posixpath.join(long_link, *[".."] * levels_up)))
    members.append(_link("overwrite", "escape/sentinel", tarfile.LNKTYPE))
    members.append(_file("overwrite"))
    return _tar(path, members, {"overwrite": b"pwned"})


@pytest.mark.hostile(
    "a tar with the CVE-2025-4517 structure (nested 247-char dirs + symlinks past PATH_MAX, escape link, hardlink)",
    "UnsafeArchiveError on the first link, on any Python version; the file three levels above --dest is untouched",
)
def test_cve_2025_4517_structure_is_refused(tmp_path):
    (tmp_path / "sentinel").write_bytes(SENTINEL)
    dest = tmp_path / "x" / "y" / "out"  # extraction root: tmp_path/x/y/<temp>; three levels up: tmp_path
    dest.parent.mkdir(parents=True)
    archive = _cve_2025_4517_tar(tmp_path / "x" / "cve.tar", levels_up=3)
    _refused(archive, dest, tmp_path, match="symbolic link")


@pytest.mark.hostile("tar device, fifo and GNU sparse members", "UnsafeArchiveError; nothing written")
@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE], ids=["chr", "blk", "fifo"])
def test_tar_special_members_are_refused(arena, kind):
    root, dest = arena
    dev = tarfile.TarInfo("dev/node")
    dev.type = kind
    dev.devmajor, dev.devminor = 1, 3
    _refused(_tar(root / "dev.tar", [_file("top.txt"), dev], FILES), dest, root, match="device or special")


@pytest.mark.hostile("a zip entry with a character-device mode", "UnsafeArchiveError; nothing written")
def test_zip_device_entries_are_refused(arena):
    root, dest = arena
    archive = root / "dev.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        info = zipfile.ZipInfo("dev/tty")
        info.external_attr = (stat.S_IFCHR | 0o666) << 16
        zf.writestr(info, b"")
    _refused(archive, dest, root, match="device")


# --- names --------------------------------------------------------------------------------------


@pytest.mark.hostile(
    "tar members named ../x, sub/../../x, /abs, C:/x, a NUL byte",
    "UnsafeArchiveError naming the member before anything is written",
)
@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "sub/../../escape.txt", "/tmp/absolute.txt", "C:/drive.txt", "..\\..\\back.txt"],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "backslash-dotdot"],
)
def test_tar_escaping_names_are_refused(arena, name):
    root, dest = arena
    archive = _tar(root / "bad.tar", [_file(n) for n in FILES] + [_file(name)], {**FILES, name: b"pwned"})
    _refused(archive, dest, root)


@pytest.mark.hostile("zip members named ../x, /abs, C:\\x, ..\\x", "UnsafeArchiveError; nothing written")
@pytest.mark.parametrize(
    "name", ["../escape.txt", "/abs.txt", "C:\\drive.txt", "..\\escape.txt"], ids=["dotdot", "absolute", "drive", "backslash"]
)
def test_zip_escaping_names_are_refused(arena, name):
    root, dest = arena
    _refused(_zip(root / "bad.zip", {**FILES, name: b"pwned"}), dest, root)


@pytest.mark.hostile("a pax tar header whose member name holds a NUL byte", "UnsafeArchiveError; nothing written")
def test_nul_byte_in_a_name_is_refused(arena):
    root, dest = arena
    info = _file("ok.txt")
    info.pax_headers = {"path": "ok.txt\x00/../../evil"}
    archive = _tar(root / "nul.tar", [info], {"ok.txt": b"x"}, mode="w")
    with tarfile.open(archive, format=tarfile.PAX_FORMAT) as tf:
        names = tf.getnames()
    assert any("\x00" in n for n in names), names  # the archive really carries the NUL byte
    _refused(archive, dest, root, match="NUL")


@pytest.mark.hostile("a tar whose file member sits where another member is a file (a, then a/b)", "DataError; nothing written")
def test_conflicting_and_duplicate_members_are_refused(arena):
    root, dest = arena
    _refused(_tar(root / "c.tar", [_file("a"), _file("a/b")], {"a": b"1", "a/b": b"2"}), dest, root, DataError)
    _refused(_tar(root / "d.tar", [_file("a"), _file("a")], {"a": b"1"}), dest, root, DataError, match="twice")


# --- sizes ---------------------------------------------------------------------------------------


def _zip_of_zeros(path: Path, megabytes: int) -> Path:
    """A deflated zip holding ``megabytes`` MiB of zeros, written 1 MiB at a time (small in memory)."""
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf, zf.open(
        "zeros.bin", "w", force_zip64=True
    ) as fh:
        for _ in range(megabytes):
            fh.write(block)
    return path


@pytest.mark.hostile(
    "a zip bomb: 200 KB of deflate expanding to 200 MiB of zeros (ratio ~1000)",
    "UnsafeArchiveError from the headers, before a byte is written; nothing outside --dest",
)
def test_zip_bomb_is_refused_before_writing(arena):
    root, dest = arena
    archive = _zip_of_zeros(root / "bomb.zip", 200)
    assert archive.stat().st_size < 300_000
    _refused(archive, dest, root, match="expand")


@pytest.mark.hostile("a tar.gz whose headers declare 200 MiB in a tiny file", "UnsafeArchiveError before writing")
def test_tar_gz_bomb_is_refused_before_writing(arena):
    root, dest = arena
    archive = root / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tf:
        info = _file("zeros.bin")
        info.size = 200 << 20

        class Zeros(io.RawIOBase):  # 200 MiB of zeros without holding them
            def readable(self):
                return True

            def readinto(self, b):
                b[:] = bytes(len(b))
                return len(b)

        tf.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
    assert archive.stat().st_size < 2 << 20
    _refused(archive, dest, root, match="expand")


@pytest.mark.hostile("an archive larger than an explicit --max-size", "UnsafeArchiveError; nothing written")
def test_explicit_size_and_ratio_limits(arena):
    root, dest = arena
    archive = _good_tar(root / "good.tar")
    total = sum(len(v) for v in FILES.values())
    _refused(archive, dest, root, match="limit", max_total=total - 1)
    zipped = root / "text.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.txt", b"a" * 100_000)  # ~1000 times smaller than its text
    _refused(zipped, dest, root, match="expand", max_ratio=2.0, ratio_floor=0)
    assert extract(archive, dest, max_total=total) == dest  # exactly at the limit is fine


@pytest.mark.hostile("a zip member holding more bytes than its header declares", "DataError (bad CRC / size); nothing kept")
def test_zip_member_with_lying_size_is_refused(arena):
    root, dest = arena
    archive = _zip(root / "lie.zip", {"a.txt": b"A" * 1000})
    raw = bytearray(archive.read_bytes())
    # shrink the declared size in the central directory (offset 24 of the 'PK\1\2' record)
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    _refused(archive, dest, root, DataError)


# --- corrupt input ----------------------------------------------------------------------------------


@pytest.mark.hostile("a .tar.gz cut after 60 bytes, a zip whose deflate data are garbage", "DataError 'corrupt archive'; nothing kept")
def test_corrupt_archives_are_data_errors_and_leave_nothing(arena):
    root, dest = arena
    archive = _good_tar(root / "cut.tar.gz", "w:gz")
    archive.write_bytes(archive.read_bytes()[:60])
    _refused(archive, dest, root, DataError, match="corrupt")
    bad = root / "garbage.zip"
    with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.bin", bytes(range(256)) * 100)
    raw = bytearray(bad.read_bytes())
    start = raw.find(b"x.bin") + len("x.bin")  # the deflate stream follows the local header's name
    raw[start : start + 40] = b"\xff" * 40
    bad.write_bytes(bytes(raw))
    _refused(bad, dest, root, DataError, match="corrupt")


@pytest.mark.hostile("an encrypted zip member", "DataError 'encrypted'; nothing written")
def test_encrypted_zip_is_refused(arena):
    root, dest = arena
    archive = _zip(root / "enc.zip", {"a.txt": b"secret"})
    raw = bytearray(archive.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set bit 0 ("encrypted") in both headers
        at = raw.find(sig) + flag_at
        raw[at] |= 1
    archive.write_bytes(bytes(raw))
    _refused(archive, dest, root, DataError, match="encrypted")


@pytest.mark.hostile("a directory or a text file passed as the archive", "DataError naming it")
def test_not_an_archive(arena):
    root, dest = arena
    (root / "folder").mkdir()
    _refused(root / "folder", dest, root, DataError, match="not a .zip or .tar")
    (root / "notes.txt").write_text("just text")
    _refused(root / "notes.txt", dest, root, DataError, match="not a .zip or .tar")


@pytest.mark.hostile("a served tar with a ../../ member, downloaded then extracted", "download succeeds; extraction refused, nothing escapes")
def test_served_traversal_archive_downloads_but_refuses_to_extract(http_server, tmp_path):
    bad = _tar(tmp_path / "src.tar", [_file("ok.txt"), _file("../../x.txt")], {"ok.txt": b"a", "../../x.txt": b"b"})
    http_server.files["/bad.tar"] = bad.read_bytes()
    raw = tmp_path / "raw"
    path = download(f"{http_server.url}/bad.tar", raw / "bad.tar", progress=False)
    with pytest.raises(UnsafeArchiveError, match=r"\.\."):
        extract(path, raw / "bad")
    assert {p.name for p in raw.iterdir()} == {"bad.tar"}
    assert not (tmp_path / "x.txt").exists()
