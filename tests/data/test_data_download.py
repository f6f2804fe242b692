"""download(): verified, resumable, atomic; against a 127.0.0.1 server started per test."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest
from local_http_server import http_server  # noqa: F401 (pytest fixture)

from moebius.data.download import download, part_path, verify_file
from moebius.errors import ChecksumError, DownloadError

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_good_download_is_verified_and_leaves_no_partial(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    out = download(f"{http_server.url}/a.bin", dest, sha256=SHA, expected_size=len(PAYLOAD), progress=False, md5=MD5)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_existing_verified_file_is_reused_without_traffic(http_server, tmp_path):
    dest = tmp_path / "a.bin"
    dest.write_bytes(PAYLOAD)
    download(f"{http_server.url}/a.bin", dest, sha256=SHA, progress=False)
    assert http_server.log == []


def test_existing_corrupt_file_is_replaced(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"garbage")
    download(f"{http_server.url}/a.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_checksum_removes_the_bad_data(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    with pytest.raises(ChecksumError, match="sha256"):
        download(f"{http_server.url}/a.bin", dest, sha256="0" * 64, progress=False)
    assert not dest.exists()
    assert not part_path(dest).exists()


def test_wrong_md5_removes_the_bad_data(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    with pytest.raises(ChecksumError, match="md5"):
        download(f"{http_server.url}/a.bin", dest, md5="f" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_larger_than_expected_size_is_a_checksum_error(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="size"):
        download(f"{http_server.url}/a.bin", tmp_path / "a.bin", expected_size=len(PAYLOAD) - 1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_keeps_partial_then_resumes(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    http_server.truncate_at["/a.bin"] = 100_000
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="ended early"):
        download(f"{http_server.url}/a.bin", dest, sha256=SHA, progress=False)
    assert not dest.exists()
    assert part_path(dest).read_bytes() == PAYLOAD[:100_000]

    del http_server.truncate_at["/a.bin"]  # the server recovers
    download(f"{http_server.url}/a.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [e["range"] for e in http_server.log] == [None, "bytes=100000-"]
    assert http_server.log[1]["status"] == 206
    assert http_server.log[1]["sent"] == len(PAYLOAD) - 100_000


def test_existing_partial_fetches_only_the_rest(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(PAYLOAD[:123_456])
    download(f"{http_server.url}/a.bin", dest, sha256=SHA, expected_size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert len(http_server.log) == 1
    assert http_server.log[0]["range"] == "bytes=123456-"
    assert http_server.log[0]["sent"] == len(PAYLOAD) - 123_456


def test_complete_partial_without_known_size_gets_416_and_is_kept(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(PAYLOAD)
    download(f"{http_server.url}/a.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.log[0]["status"] == 416


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    http_server.ignore_range.add("/a.bin")
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"x" * 5000)  # would corrupt the file if appended to
    download(f"{http_server.url}/a.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.log[0]["status"] == 200


def test_http_404_is_a_download_error(http_server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download(f"{http_server.url}/missing.bin", tmp_path / "m.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_a_download_error(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach"):
        download(f"http://127.0.0.1:{port}/a.bin", tmp_path / "a.bin", progress=False, timeout=2)


def test_verify_file_keeps_a_manual_copy_on_mismatch(tmp_path):
    path = tmp_path / "manual.zip"
    path.write_bytes(PAYLOAD)
    verify_file(path, sha256=SHA, md5=MD5, expected_size=len(PAYLOAD))
    with pytest.raises(ChecksumError):
        verify_file(path, sha256="0" * 64)
    assert path.exists()
