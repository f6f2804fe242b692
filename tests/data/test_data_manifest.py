"""manifest.csv: writing, strict reading, verification and the data version."""

from __future__ import annotations

import hashlib

import pytest

from moebius.data.manifest import (
    ManifestRow,
    data_version,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from moebius.errors import ChecksumError, DataError


def _folder(tmp_path, n=3):
    rows = []
    for i in range(n):
        data = f"image {i}".encode()
        (tmp_path / f"x-{i}.png").write_bytes(data)
        rows.append(ManifestRow(f"x-{i}", f"src/{i}.jpg", hashlib.sha256(data).hexdigest(), 10 + i, 20))
    write_manifest(tmp_path, reversed(rows))
    return rows


def test_roundtrip_sorted_and_typed(tmp_path):
    rows = _folder(tmp_path)
    df = read_manifest(tmp_path)
    assert list(df.columns) == ["id", "source", "sha256", "width", "height"]
    assert list(df["id"]) == [r.id for r in rows]  # sorted by id whatever the input order
    assert list(df["width"]) == [10, 11, 12]
    assert verify_manifest(tmp_path) == 3


def test_verify_catches_changed_and_missing_files(tmp_path):
    _folder(tmp_path)
    (tmp_path / "x-1.png").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="x-1.png"):
        verify_manifest(tmp_path)
    (tmp_path / "x-1.png").unlink()
    with pytest.raises(DataError, match="missing"):
        verify_manifest(tmp_path)


def test_data_version_tracks_contents(tmp_path):
    rows = _folder(tmp_path)
    v1 = data_version(tmp_path)
    assert len(v1) == 12 and v1 == data_version(tmp_path / "manifest.csv")
    write_manifest(tmp_path, rows)
    assert data_version(tmp_path) == v1  # same rows, same bytes
    write_manifest(tmp_path, rows[:2])
    assert data_version(tmp_path) != v1


@pytest.mark.parametrize(
    "text,match",
    [
        ("id,source,sha256,width\nx,s," + "a" * 64 + ",1\n", "lacks column"),
        ("id,source,sha256,width,height\nx,s," + "a" * 64 + ",1,1\nx,t," + "b" * 64 + ",1,1\n", "repeats"),
        ("id,source,sha256,width,height\n../x,s," + "a" * 64 + ",1,1\n", "invalid image id"),
        ("id,source,sha256,width,height\nx,s,nothex,1,1\n", "sha256"),
        ("id,source,sha256,width,height\nx,s," + "a" * 64 + ",0,1\n", "positive"),
        ("", "unreadable"),
    ],
    ids=["missing-column", "duplicate-id", "path-id", "bad-hash", "bad-size", "empty"],
)
@pytest.mark.hostile(
    "manifests with a missing column, duplicate or path-like ids, a bad hash, a zero size, no content",
    "DataError naming the problem",
)
def test_malformed_manifests_are_rejected(tmp_path, text, match):
    (tmp_path / "manifest.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        read_manifest(tmp_path)


def test_missing_manifest_and_duplicate_rows_on_write(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path)
    row = ManifestRow("a", "s", "0" * 64, 1, 1)
    with pytest.raises(DataError, match="duplicate"):
        write_manifest(tmp_path, [row, row])
    assert not (tmp_path / "manifest.csv").exists()


@pytest.mark.hostile(
    "an image id with a trailing newline, a separator, '..', a leading dot or 300 characters",
    "DataError 'invalid image id' before any path is built from it",
)
@pytest.mark.parametrize("bad", ["a\n", "a/b", "..", ".hidden", "a\\b", "", "x" * 300, "a\x00b"])
def test_check_id_refuses_ids_that_are_not_plain_file_stems(bad):
    from moebius.data.manifest import check_id

    with pytest.raises(DataError, match="invalid image id"):
        check_id(bad)
    assert check_id("img_00.1-a") == "img_00.1-a" and check_id("x" * 200) == "x" * 200
