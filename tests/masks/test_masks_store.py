"""Stored mask sets: byte-identical across runs and worker counts, manifest contents, atomicity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import moebius.masks.store as store
from moebius.errors import UnknownNameError
from moebius.masks import MaskError, generate_mask, resize_nearest, write_mask_set

IDS = [f"img_{i:04d}" for i in range(150)]  # > 2 chunks, so two workers really split the work


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_byte_identical_across_runs_and_worker_counts(tmp_path: Path) -> None:
    write_mask_set("mat_small_256", IDS, tmp_path / "a", seed=7, size=256)
    write_mask_set("mat_small_256", IDS, tmp_path / "b", seed=7, size=256)
    write_mask_set("mat_small_256", IDS, tmp_path / "c", seed=7, size=256, workers=2)
    a = digest(tmp_path / "a")
    assert set(a) == {f"{i}.png" for i in IDS} | {"manifest.csv"}  # no temp files left behind
    assert a == digest(tmp_path / "b") == digest(tmp_path / "c")
    write_mask_set("mat_small_256", IDS[:5], tmp_path / "d", seed=8, size=256)
    assert all(digest(tmp_path / "d")[f"{i}.png"] != a[f"{i}.png"] for i in IDS[:5])


def test_manifest_and_pngs_follow_the_contract(tmp_path: Path) -> None:
    ids = ["z9", "a1", "007"]  # not sorted, and one that looks like a number
    df = write_mask_set("mat_large_512", ids, tmp_path, seed=3, size=64)
    disk = pd.read_csv(tmp_path / "manifest.csv", dtype={"id": str})
    assert list(disk.columns) == ["id", "seed", "hole_ratio", "protocol", "version", "polarity", "size",
                                  "cv2_version"]
    assert disk["id"].tolist() == ids
    assert set(disk["protocol"]) == {"mat_large_512"} and set(disk["version"]) == {1}
    assert set(disk["polarity"]) == {"255_hole"} and set(disk["size"]) == {64}
    assert set(disk["seed"]) == {3} and set(disk["cv2_version"]) == {cv2.__version__}
    pd.testing.assert_frame_equal(df.reset_index(drop=True), disk, check_dtype=False)
    for row in disk.itertuples():
        png = cv2.imread(str(tmp_path / f"{row.id}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and png.shape == (64, 64)
        assert set(np.unique(png).tolist()) <= {0, 255}
        expected = resize_nearest(generate_mask("mat_large_512", row.id, 3), 64)
        assert np.array_equal(png == 255, expected)  # 255 = hole
        assert row.hole_ratio == pytest.approx((png == 255).mean(), abs=1e-12)  # stored size's ratio


def test_manifest_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mask_set("mat_small_256", IDS[:3], tmp_path, seed=0, size=32)
    assert (tmp_path / "manifest.csv").exists()

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-set")

    monkeypatch.setattr(store, "_write_chunk", boom)
    with pytest.raises(RuntimeError):
        write_mask_set("mat_small_256", IDS[:3], tmp_path, seed=1, size=32)
    assert not (tmp_path / "manifest.csv").exists()  # the stale manifest cannot vouch for a half-set


@pytest.mark.parametrize("ids, message", [
    (["a", "b", "a"], "duplicate image id 'a'"),
    (["../evil"], "cannot be a file name"),
    ([".hidden"], "cannot be a file name"),
    ([], "no image ids"),
])
def test_bad_ids_are_rejected(tmp_path: Path, ids: list[str], message: str) -> None:
    with pytest.raises(MaskError, match=message.replace(".", r"\.")):
        write_mask_set("mat_small_256", ids, tmp_path, seed=0, size=32)


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'lama_thick_256'"):
        write_mask_set("lama_thick256", ["a"], tmp_path, seed=0, size=32)
    with pytest.raises(MaskError, match="size"):
        write_mask_set("lama_thick_256", ["a"], tmp_path, seed=0, size=0)
    with pytest.raises(MaskError, match="workers"):
        write_mask_set("lama_thick_256", ["a"], tmp_path, seed=0, size=32, workers=0)


@pytest.mark.hostile(
    "`moebius masks generate --out` naming an existing file",
    "one line naming it; the file is left as it was",
)
def test_generate_into_a_file_is_one_line(tmp_path: Path, run_cli) -> None:
    from PIL import Image

    from moebius.data.manifest import row_for_png, write_manifest

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "a1.png")
    write_manifest(images, [row_for_png("a1", "test", (images / "a1.png").read_bytes(), 32, 32)])
    out = tmp_path / "masks"
    out.write_text("not a folder\n")
    config = Path(__file__).resolve().parents[2] / "config" / "smoke.yaml"
    result = run_cli("--config", str(config), "masks", "generate", "--benchmark", "ffhq256", "--images", str(images),
                     "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("moebius: error:")]
    assert len(lines) == 1 and str(out) in lines[0]
    assert out.read_text() == "not a folder\n"
