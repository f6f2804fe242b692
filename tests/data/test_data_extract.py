"""extract(): safe (no escaping members, no devices) and all-or-nothing."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from local_http_server import http_server  # noqa: F401 (pytest fixture)

from moebius.data.download import download, extract
from moebius.errors import DataError, UnsafeArchiveError

FILES = {"top.txt": b"hello", "sub/inner.bin": bytes(range(256)) * 4}


def _tar(path: Path, members: list[tarfile.TarInfo], payloads: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for info in members:
            data = payloads.get(info.name)
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
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


def _assert_untouched(parent: Path, dest: Path, allowed: set[str]) -> None:
    """Nothing under the final name, no leftover temp dirs, nothing escaped into ``parent``."""
    assert not dest.exists()
    assert {p.name for p in parent.iterdir()} == allowed


@pytest.mark.parametrize("name,mode", [("good.tar", "w"), ("good.tar.gz", "w:gz")])
def test_tar_extracts_all_members(tmp_path, name, mode):
    archive = _good_tar(tmp_path / name, mode)
    out = extract(archive, tmp_path / "out")
    for rel, data in FILES.items():
        assert (out / rel).read_bytes() == data
    assert {p.name for p in tmp_path.iterdir()} == {name, "out"}  # the temp dir was renamed away


def test_zip_extracts_all_members_and_safe_symlink(tmp_path):
    archive = _zip(tmp_path / "good.zip", FILES, symlinks={"sub/link": "../top.txt"})
    out = extract(archive, tmp_path / "out")
    for rel, data in FILES.items():
        assert (out / rel).read_bytes() == data
    assert (out / "sub" / "link").is_symlink()
    assert (out / "sub" / "link").read_bytes() == FILES["top.txt"]


def test_existing_destination_is_left_alone(tmp_path):
    archive = _good_tar(tmp_path / "good.tar")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "marker").write_text("done")
    assert extract(archive, dest) == dest
    assert [p.name for p in dest.iterdir()] == ["marker"]


@pytest.mark.parametrize(
    "member",
    [
        _file("../escape.txt"),
        _file("sub/../../escape.txt"),
        _file("/tmp/absolute.txt"),
        _link("evil_link", "../../outside"),
        _link("abs_link", "/etc/passwd"),
        _link("sub/evil_link", "../../outside"),
        _link("hard", "../outside", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "symlink-abs", "nested-symlink-out", "hardlink-out"],
)
def test_tar_rejects_escaping_members(tmp_path, member):
    payloads = dict(FILES)
    if member.isfile():
        payloads[member.name] = b"pwned"
    archive = _tar(tmp_path / "bad.tar", [_file(n) for n in FILES] + [member], payloads)
    with pytest.raises(UnsafeArchiveError):
        extract(archive, tmp_path / "out")
    _assert_untouched(tmp_path, tmp_path / "out", {"bad.tar"})


def test_tar_rejects_device_files(tmp_path):
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    dev.devmajor, dev.devminor = 1, 3
    archive = _tar(tmp_path / "dev.tar", [_file("top.txt"), dev], FILES)
    with pytest.raises(UnsafeArchiveError, match="device"):
        extract(archive, tmp_path / "out")
    _assert_untouched(tmp_path, tmp_path / "out", {"dev.tar"})


def test_tar_allows_links_that_stay_inside(tmp_path):
    members = [_file(n) for n in FILES] + [_link("sub/up", "../top.txt"), _link("hard", "top.txt", tarfile.LNKTYPE)]
    out = extract(_tar(tmp_path / "ok.tar", members, FILES), tmp_path / "out")
    assert (out / "sub" / "up").read_bytes() == FILES["top.txt"]
    assert (out / "hard").read_bytes() == FILES["top.txt"]


@pytest.mark.parametrize(
    "entries,symlinks",
    [({"../escape.txt": b"x"}, {}), ({"/abs.txt": b"x"}, {}), ({}, {"link": "../../outside"}), ({}, {"l": "/etc"})],
    ids=["dotdot", "absolute", "symlink-out", "symlink-abs"],
)
def test_zip_rejects_escaping_members(tmp_path, entries, symlinks):
    archive = _zip(tmp_path / "bad.zip", {**FILES, **entries}, symlinks)
    with pytest.raises(UnsafeArchiveError):
        extract(archive, tmp_path / "out")
    _assert_untouched(tmp_path, tmp_path / "out", {"bad.zip"})


def test_corrupt_archive_is_a_data_error_and_leaves_nothing(tmp_path):
    archive = _good_tar(tmp_path / "cut.tar.gz", "w:gz")
    archive.write_bytes(archive.read_bytes()[:60])
    with pytest.raises(DataError):
        extract(archive, tmp_path / "out")
    _assert_untouched(tmp_path, tmp_path / "out", {"cut.tar.gz"})


def test_served_traversal_archive_downloads_but_refuses_to_extract(http_server, tmp_path):
    bad = _tar(tmp_path / "src.tar", [_file("ok.txt"), _file("../../x.txt")], {"ok.txt": b"a", "../../x.txt": b"b"})
    http_server.files["/bad.tar"] = bad.read_bytes()
    raw = tmp_path / "raw"
    path = download(f"{http_server.url}/bad.tar", raw / "bad.tar", progress=False)
    with pytest.raises(UnsafeArchiveError, match=r"\.\."):
        extract(path, raw / "bad")
    _assert_untouched(raw, raw / "bad", {"bad.tar"})
    assert not (tmp_path / "x.txt").exists()


def test_zip_rejects_device_entries(tmp_path):
    archive = tmp_path / "dev.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("dev/tty")
        info.external_attr = (stat.S_IFCHR | 0o666) << 16
        zf.writestr(info, b"")
    with pytest.raises(UnsafeArchiveError, match="device"):
        extract(archive, tmp_path / "out")
    _assert_untouched(tmp_path, tmp_path / "out", {"dev.zip"})
