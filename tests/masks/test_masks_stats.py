"""Hole-ratio statistics and the histogram plot."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from moebius.masks import (MaskError, hole_ratios, mask_stats, plot_hole_histograms, set_stats,
                           summarise_ratios, write_mask_set)
from moebius.masks.stats import BIN_COLUMNS

CONFIG = Path(__file__).resolve().parents[2] / "config" / "smoke.yaml"


def test_summary_bins_and_window_by_hand() -> None:
    row = summarise_ratios(np.array([0.05, 0.15, 0.45, 0.4, 0.5, 1.0]))
    assert row["n"] == 6
    assert row["mean"] == pytest.approx(2.55 / 6)
    assert row["median"] == pytest.approx(0.425)
    # 0.4 opens bin 40-50, 0.5 opens bin 50-60, 1.0 closes the last bin.
    shares = dict(zip(BIN_COLUMNS, [1, 1, 0, 0, 2, 1, 0, 0, 0, 1]))
    for col, count in shares.items():
        assert row[col] == pytest.approx(count / 6), col
    assert row["share_40_50"] == pytest.approx(3 / 6)  # closed window [0.4, 0.5]
    with pytest.raises(MaskError):
        summarise_ratios(np.array([]))


def test_mask_stats_rows(tmp_path: Path) -> None:
    df = mask_stats(["places2_test", "mat_small_256"], n=40, seed=1, size=None)
    assert df["protocol"].tolist() == ["places2_test", "mat_small_256"]
    assert df["size"].tolist() == [512, 256] and (df["n"] == 40).all()
    assert np.allclose(df[BIN_COLUMNS].sum(axis=1), 1.0)
    p2 = df.iloc[0]
    assert p2["share_40_50"] == 1.0 and 0.4 <= p2["q25"] <= p2["median"] <= p2["q75"] <= 0.5
    small = mask_stats(["mat_small_256"], n=40, seed=1, size=32).iloc[0]
    assert small["size"] == 32 and abs(small["mean"] - df.iloc[1]["mean"]) < 0.05  # resize keeps area


def test_set_stats_reads_manifests(tmp_path: Path) -> None:
    manifest = write_mask_set("lama_thick_256", [f"i{k}" for k in range(30)], tmp_path / "s", seed=2, size=64)
    row = set_stats([tmp_path / "s"]).iloc[0]
    assert (row["protocol"], row["size"], row["n"]) == ("lama_thick_256", 64, 30)
    assert row["mean"] == pytest.approx(manifest["hole_ratio"].mean())
    with pytest.raises(MaskError, match="no manifest"):
        set_stats([tmp_path / "missing"])


def test_plot_is_written(tmp_path: Path) -> None:
    ratios = {p: hole_ratios(p, 30, seed=0, size=64) for p in ["mat_small_256", "lama_thin_256", "migan_256"]}
    out = tmp_path / "plots" / "hist.png"
    plot_hole_histograms(ratios, out, footnote="n = 30 per protocol, seed 0, smoke scale")
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 400
    assert [p.name for p in out.parent.iterdir()] == ["hist.png"]  # atomic: no temp file left
    with pytest.raises(MaskError):
        plot_hole_histograms({}, out, footnote="")


@pytest.mark.hostile(
    "`moebius masks stats --set` on a set whose manifest is junk, or whose hole_ratio is text or negative",
    "one line naming the manifest; no CSV or plot written",
)
@pytest.mark.parametrize("content", [b"\x00\xff\xfe junk \x00", b"id,hole_ratio\na,0.1\nb,lots\n",
                                     b"id,hole_ratio\na,0.1\nb,-0.2\n"], ids=["junk", "text", "negative"])
def test_masks_stats_on_a_broken_set_is_one_line(tmp_path: Path, run_cli, content: bytes) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "manifest.csv").write_bytes(content)
    (tmp_path / "small.yaml").write_text("masks:\n  stats_n: 2\n")  # fresh draws are not what is tested
    result = run_cli("--config", str(CONFIG), "--config", str(tmp_path / "small.yaml"), "masks", "stats",
                     "--set", str(tmp_path / "set"), "--out-csv", str(tmp_path / "fresh.csv"),
                     "--sets-csv", str(tmp_path / "sets.csv"), "--plot", str(tmp_path / "hist.png"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("moebius: error:")]
    assert len(lines) == 1 and str(tmp_path / "set" / "manifest.csv") in lines[0]
    assert not any((tmp_path / name).exists() for name in ("fresh.csv", "sets.csv", "hist.png"))
