"""download(): verified, resumable, atomic; against a 127.0.0.1 server started per test."""

from __future__ import annotations

import hashlib
import socket
import threading

import numpy as np
import pytest
from local_http_server import http_server  # noqa: F401 (pytest fixture)

from moebius.data.download import download, part_path, verify_file
from moebius.errors import ChecksumError, DataError, DownloadError

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def _download_over_partial(http_server, tmp_path, partial: bytes, **checks) -> None:
    """Serve PAYLOAD, leave ``partial`` as the .part of an earlier try, download again: the file must be
    PAYLOAD whatever the partial held."""
    http_server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(partial)
    download(f"{http_server.url}/a.bin", dest, progress=False, **checks)
    assert dest.read_bytes() == PAYLOAD


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


@pytest.mark.hostile(
    "a download whose sha256 or md5 differs from the published one, or that is larger than the published size",
    "ChecksumError; the bad bytes are deleted, nothing kept (no final file, no partial)",
)
@pytest.mark.parametrize(("published", "match"), [
    ({"sha256": "0" * 64}, "sha256"),
    ({"md5": "f" * 32}, "md5"),
    ({"expected_size": len(PAYLOAD) - 1}, "size"),
])
def test_bytes_contradicting_the_publisher_are_removed(http_server, tmp_path, published, match):
    http_server.files["/a.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match=match):
        download(f"{http_server.url}/a.bin", tmp_path / "a.bin", progress=False, **published)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.hostile(
    "a transfer cut off mid-body",
    "DownloadError; the partial is kept as .part and the next call resumes with a Range request",
)
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
    _download_over_partial(http_server, tmp_path, PAYLOAD[:123_456], sha256=SHA, expected_size=len(PAYLOAD))
    assert len(http_server.log) == 1
    assert http_server.log[0]["range"] == "bytes=123456-"
    assert http_server.log[0]["sent"] == len(PAYLOAD) - 123_456


def test_complete_partial_without_known_size_gets_416_and_is_kept(http_server, tmp_path):
    _download_over_partial(http_server, tmp_path, PAYLOAD, sha256=SHA)
    assert http_server.log[0]["status"] == 416


@pytest.mark.hostile(
    "a server that ignores Range while a stale .part exists",
    "the file is fetched whole again, never appended to the stale bytes",
)
def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    http_server.ignore_range.add("/a.bin")
    _download_over_partial(http_server, tmp_path, b"x" * 5000, sha256=SHA)  # would corrupt the file if appended to
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


@pytest.mark.hostile(
    "a stale .part longer than the file, no checksum and no size known (server answers 416)",
    "the partial is discarded and the file fetched again whole; the stale bytes never become the file",
)
def test_stale_oversized_partial_without_checksum_is_refetched(http_server, tmp_path):
    _download_over_partial(http_server, tmp_path, PAYLOAD + b"left over from an older, longer version")
    assert [e["status"] for e in http_server.log] == [416, 200]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


@pytest.mark.hostile(
    "a 416 answer to a resume that does not state the file's length",
    "the partial is not trusted as complete: fetched again from the start",
)
def test_416_without_length_is_not_taken_as_complete(http_server, tmp_path):
    http_server.hide_length.add("/a.bin")
    _download_over_partial(http_server, tmp_path, b"y" * (len(PAYLOAD) + 10))


@pytest.mark.hostile("`moebius data download` with malformed URLs (no scheme, bad port)", "DownloadError naming the URL; nothing written")
@pytest.mark.parametrize("url", ["not-a-url", "http://127.0.0.1:99999/a.bin", "gopher://x/y"])
def test_malformed_urls_are_download_errors(tmp_path, url):
    with pytest.raises(DownloadError, match="URL|cannot reach"):
        download(url, tmp_path / "a.bin", progress=False, timeout=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.hostile("a server that answers with garbage instead of HTTP", "DownloadError; nothing under the final name")
def test_garbage_server_is_a_download_error(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"this is not HTTP at all\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(DownloadError):
            download(f"http://127.0.0.1:{srv.getsockname()[1]}/a.bin", tmp_path / "a.bin", progress=False, timeout=5)
    finally:
        thread.join(timeout=5)
        srv.close()
    assert not (tmp_path / "a.bin").exists()


@pytest.mark.hostile("a malformed --sha256 (not 64 hex digits), a destination that is a directory", "DataError before any traffic")
def test_bad_digest_and_directory_destination_are_refused_before_traffic(http_server, tmp_path):
    http_server.files["/a.bin"] = PAYLOAD
    with pytest.raises(DataError, match="64 hex"):
        download(f"{http_server.url}/a.bin", tmp_path / "a.bin", sha256="abc", progress=False)
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="directory"):
        download(f"{http_server.url}/a.bin", tmp_path / "folder", progress=False)
    assert http_server.log == []
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


@pytest.mark.hostile(
    "http_proxy set in the environment (no no_proxy) while the download comes from a server on 127.0.0.1",
    "the loopback server is reached directly, not through the proxy; the download completes",
)
def test_loopback_download_bypasses_an_environment_proxy(http_server, tmp_path, monkeypatch):
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: via the proxy it would fail
    http_server.files["/a.bin"] = PAYLOAD
    download(f"{http_server.url}/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD and http_server.log[0]["path"] == "/a.bin"
