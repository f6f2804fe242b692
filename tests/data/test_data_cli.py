"""End to end through the CLI: each bad input is one line on stderr, exit 2, and no partial file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from archives import chained_symlink_zip, tar_of
from local_http_server import http_server  # noqa: F401 (pytest fixture)

PAYLOAD = bytes(range(256)) * 64


def assert_one_line_error(result, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    # progress bars may precede it on stderr; the error itself is one line, the last, with no traceback
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("moebius: error:")]
    assert errors == [lines[-1]] and needle in lines[-1] and "Traceback" not in result.stderr, result.stderr


def test_good_download_lands_whole(run_cli, http_server, tmp_path: Path) -> None:
    http_server.files["/good.bin"] = PAYLOAD
    dest = tmp_path / "good.bin"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    result = run_cli("data", "download", f"{http_server.url}/good.bin", "--dest", str(dest), "--sha256", sha)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.hostile(
    "`moebius data download` of a truncated transfer",
    "one line naming the file, exit 2; nothing under the final name",
)
def test_truncated_download(run_cli, http_server, tmp_path: Path) -> None:
    http_server.files["/cut.bin"] = PAYLOAD
    http_server.truncate_at["/cut.bin"] = 1000
    dest = tmp_path / "cut.bin"
    result = run_cli("data", "download", f"{http_server.url}/cut.bin", "--dest", str(dest))
    assert_one_line_error(result, "cut.bin")
    assert not dest.exists()  # the partial waits in cut.bin.part for a resume, never under the final name


@pytest.mark.hostile(
    "`moebius data download --sha256` with a mismatching checksum",
    "one line, exit 2; the bytes are removed",
)
def test_checksum_mismatch(run_cli, http_server, tmp_path: Path) -> None:
    http_server.files["/bad.bin"] = PAYLOAD
    dest = tmp_path / "bad.bin"
    result = run_cli("data", "download", f"{http_server.url}/bad.bin", "--dest", str(dest), "--sha256", "0" * 64)
    assert_one_line_error(result, "bad.bin")
    assert not dest.exists()


@pytest.mark.hostile(
    "`moebius data extract` of a tar with a ../ member",
    "one line, exit 2; nothing extracted or escaped",
)
def test_unsafe_archive_member(run_cli, tmp_path: Path) -> None:
    archive = tar_of(tmp_path / "evil.tar", {"../escape.txt": b"evil"})
    dest = tmp_path / "out"
    result = run_cli("data", "extract", str(archive), "--dest", str(dest))
    assert_one_line_error(result, "escape.txt")
    assert not dest.exists() and not (tmp_path / "escape.txt").exists()


def test_missing_weight_names_file_source_and_place(run_cli, tmp_path: Path) -> None:
    result = run_cli("weights", "check", "inception_fid", env={"MOEBIUS_WEIGHTS_DIR": str(tmp_path)})
    assert_one_line_error(result, "weights-inception-2015-12-05-6726825d.pth")
    assert str(tmp_path) in result.stderr and "http" in result.stderr


@pytest.mark.hostile(
    "`moebius data extract` of the chained-symlink zip, and of a tar larger than --max-size",
    "one line each (symbolic link / limit), exit 2, nothing under --dest",
)
def test_extract_refusals_are_one_line(run_cli, tmp_path: Path) -> None:
    chain = chained_symlink_zip(tmp_path / "chain.zip")
    result = run_cli("data", "extract", str(chain), "--dest", str(tmp_path / "out"))
    assert_one_line_error(result, "symbolic link")
    tar = tar_of(tmp_path / "big.tar", {"data.bin": PAYLOAD})
    result = run_cli("data", "extract", str(tar), "--dest", str(tmp_path / "out"), "--max-size", "1000")
    assert_one_line_error(result, "limit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tar", "chain.zip"]
    result = run_cli("data", "extract", str(tar), "--dest", str(tmp_path / "out"), "--max-size", str(len(PAYLOAD)))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "data.bin").read_bytes() == PAYLOAD


@pytest.mark.hostile(
    "`moebius data download` of a URL without a scheme, and with --dest under a regular file",
    "one line each (invalid URL / not a directory), exit 2, no traceback",
)
def test_download_bad_url_and_dest_are_one_line(run_cli, tmp_path: Path) -> None:
    result = run_cli("data", "download", "not-a-url", "--dest", str(tmp_path / "a.bin"))
    assert_one_line_error(result, "invalid URL")
    (tmp_path / "afile").write_text("x")
    result = run_cli("data", "download", "http://127.0.0.1:9/a.bin", "--dest", str(tmp_path / "afile" / "a.bin"))
    assert_one_line_error(result, "afile")
