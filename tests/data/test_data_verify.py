"""Per-image sha256 checks where images enter: folders, benchmark preparation, training streams, the CLI."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from moebius.data import manifest as manifest_mod
from moebius.data.benchmarks import prepare_benchmark
from moebius.data.manifest import (
    check_manifest,
    expected_sha256,
    load_verified_image,
    read_manifest,
    verify_manifest,
)
from moebius.data.preprocess import load_image, resize_bicubic, save_png
from moebius.data.smoke import make_smoke_dataset
from moebius.errors import ChecksumError, DataError
from moebius.train.batches import TrainStream, list_images

N = 6


@pytest.fixture
def data_root(tmp_path):
    """<root>/datasets/smoke_natural/{train,test}: N images each, with manifests."""
    root = tmp_path / "data"
    make_smoke_dataset("smoke_natural", root / "datasets", n_train=N, n_test=N, size=32, seed=1)
    return root


def _folder(data_root):
    return data_root / "datasets" / "smoke_natural" / "train"


def _victim(folder):
    return folder / "smoke_natural-train-00002.png"


def _replace(path):
    """Another valid PNG of the same size (another image of the set)."""
    other = path.with_name("smoke_natural-train-00003.png")
    save_png(path, load_image(other))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _resize(path):
    img = load_image(path)
    save_png(path, resize_bicubic(img, img.shape[0] - 4, img.shape[1] - 4))


TAMPER = {"replaced": _replace, "truncated": _truncate, "resized": _resize}


@pytest.mark.hostile(
    "an image replaced, truncated or resized under an unchanged manifest (same data version)",
    "verify_manifest raises ChecksumError naming the file, also after an earlier check cached the folder",
)
@pytest.mark.parametrize("how", list(TAMPER))
def test_folder_check_catches_changed_images(data_root, how):
    folder = _folder(data_root)
    assert verify_manifest(folder) == N  # intact, and now remembered as intact by this process
    TAMPER[how](_victim(folder))
    with pytest.raises(ChecksumError, match="smoke_natural-train-00002.png"):
        verify_manifest(folder)
    n, problems = check_manifest(folder)
    assert n == N and len(problems) == 1


@pytest.mark.hostile(
    "an image rewritten in place with the same size and its mtime set back, after the folder was checked",
    "ChecksumError: the cache keys on ctime and inode too, which a user cannot set back",
)
def test_in_place_rewrite_with_restored_mtime_is_caught(data_root):
    folder = _folder(data_root)
    victim = _victim(folder)
    verify_manifest(folder)
    before = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF  # same length, one byte different
    while True:  # ctime ticks coarsely (a few ms): rewrite until the kernel records a new one
        with open(victim, "r+b") as fh:
            fh.write(data)
        os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
        if victim.stat().st_ctime_ns != before.st_ctime_ns:
            break
        time.sleep(0.005)
    assert victim.stat().st_mtime_ns == before.st_mtime_ns and victim.stat().st_size == before.st_size
    with pytest.raises(ChecksumError):
        verify_manifest(folder)


def test_repeated_checks_of_an_unchanged_folder_only_stat(data_root, monkeypatch):
    folder = _folder(data_root)
    verify_manifest(folder)
    calls = []
    real = manifest_mod.file_sha256
    monkeypatch.setattr(manifest_mod, "file_sha256", lambda p: calls.append(p) or real(p))
    assert verify_manifest(folder) == N
    assert calls == []  # nothing changed: no image hashed again
    _truncate(_victim(folder))
    with pytest.raises(ChecksumError):
        verify_manifest(folder)
    assert len(calls) == N  # something changed: every image hashed again


@pytest.mark.hostile("a listed image deleted; a manifest.csv that is a folder; a width of 1e400", "DataError naming the file")
def test_missing_image_and_unreadable_manifests(data_root, tmp_path):
    folder = _folder(data_root)
    _victim(folder).unlink()
    with pytest.raises(DataError, match="00002.png .*missing"):
        verify_manifest(folder)
    (tmp_path / "odd" / "manifest.csv").mkdir(parents=True)
    with pytest.raises(DataError, match="unreadable manifest"):
        verify_manifest(tmp_path / "odd")
    (tmp_path / "inf").mkdir()
    (tmp_path / "inf" / "manifest.csv").write_text("id,source,sha256,width,height\nx,s," + "a" * 64 + ",1e400,1\n")
    with pytest.raises(DataError, match="positive integers"):
        read_manifest(tmp_path / "inf")


@pytest.mark.hostile(
    "a training image replaced or truncated after the manifest was written",
    "the training stream raises ChecksumError naming the file when it loads it",
)
@pytest.mark.parametrize("how", ["replaced", "truncated"])
def test_training_stream_refuses_a_changed_image(data_root, how):
    paths = list_images(data_root, ["smoke_natural"], "train")
    stream = TrainStream(paths, 32, seed=0, mask_protocols=None)
    index = paths.index(_victim(_folder(data_root)))
    assert isinstance(stream.load(index), torch.Tensor)  # intact: loads
    TAMPER[how](paths[index])
    fresh = TrainStream(paths, 32, seed=0, mask_protocols=None)
    with pytest.raises(ChecksumError, match="smoke_natural-train-00002.png"):
        fresh.load(index)


def test_verified_load_matches_plain_load_and_needs_a_listing(data_root, tmp_path):
    folder = _folder(data_root)
    victim = _victim(folder)
    np.testing.assert_array_equal(load_verified_image(victim), load_image(victim))
    assert expected_sha256(victim) == read_manifest(folder).set_index("id").loc[victim.stem, "sha256"]
    stray = folder / "not-listed.png"
    stray.write_bytes(victim.read_bytes())
    with pytest.raises(DataError, match="not listed"):
        load_verified_image(stray)
    lone = tmp_path / "lone" / "x.png"
    lone.parent.mkdir()
    lone.write_bytes(victim.read_bytes())
    with pytest.raises(DataError, match="no manifest.csv"):
        load_verified_image(lone)


@pytest.mark.hostile(
    "a dataset image replaced before `moebius data benchmark` reads it",
    "ChecksumError naming the source file; no benchmark manifest is written",
)
def test_benchmark_preparation_refuses_a_changed_source(data_root, tmp_path):
    folder = _folder(data_root)
    _replace(_victim(folder))
    out = tmp_path / "bench"
    with pytest.raises(ChecksumError, match="smoke_natural-train-00002.png"):
        prepare_benchmark(folder, out, n_images=None, size=16, preprocess="mat_crop", seed=0)
    assert not (out / "manifest.csv").exists()


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_verify_ok(run_cli, data_root):
    folders = [str(data_root / "datasets" / "smoke_natural" / s) for s in ("train", "test")]
    result = run_cli("data", "verify", *folders)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok: {2 * N} images"


@pytest.mark.hostile("`moebius data verify` on a folder with one truncated image", "exit 2, exactly one line naming the file")
def test_cli_verify_one_bad_image_is_one_line(run_cli, data_root):
    folder = _folder(data_root)
    _truncate(_victim(folder))
    result = run_cli("data", "verify", str(folder))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moebius: error: ") and "00002.png" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.hostile(
    "`moebius data verify` over a folder with two bad images and a folder without a manifest",
    "exit 2, one line per problem (three lines)",
)
def test_cli_verify_lists_every_problem(run_cli, data_root, tmp_path):
    folder = _folder(data_root)
    _truncate(_victim(folder))
    (folder / "smoke_natural-train-00004.png").unlink()
    result = run_cli("data", "verify", str(folder), str(tmp_path / "nowhere"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("moebius: error: ") for line in lines), result.stderr
    assert "00002.png" in lines[0] + lines[1] and "00004.png" in lines[0] + lines[1] and "nowhere" in lines[2]
