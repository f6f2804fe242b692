"""Baselines end to end: a sample folder that says how it was made, and the table cells it fills."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from moebius.config import BenchmarkConfig, load_config
from moebius.eval.inpaint import inpaint_benchmark
from moebius.report.tables import build_tables

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"
IDS = ["k2", "a1", "z0"]


def _benchmark(root: Path, size: int) -> tuple[Path, Path]:
    """A benchmark folder (manifest with checksums) and a mask set (255 = hole), one hole per id."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.default_rng(1)
    ratios = []
    for k, i in enumerate(IDS):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(images / f"{i}.png")
        hole = np.zeros((size, size), np.uint8)
        hole[size // 4 + k : size // 2 + k, size // 8 : 5 * size // 8] = 255
        Image.fromarray(hole).save(masks / f"{i}.png")
        ratios.append(float((hole == 255).mean()))
    sha = [hashlib.sha256((images / f"{i}.png").read_bytes()).hexdigest() for i in IDS]
    pd.DataFrame({"id": IDS, "source": "test", "sha256": sha, "width": size, "height": size}).to_csv(
        images / "manifest.csv", index=False)
    pd.DataFrame({"id": IDS, "polarity": "255_hole", "hole_ratio": ratios}).to_csv(masks / "manifest.csv", index=False)
    return images, masks


def test_comodgan_sample_folder_records_checkpoint_resize_and_weights(tmp_path) -> None:
    cfg = load_config("config/smoke.yaml")
    # CelebA-HQ at 64 px on its 512-px protocol: the FFHQ-256 CoModGAN runs at 32 px and is resized back.
    bench = BenchmarkConfig(dataset="smoke_portrait", split="test", n_images=3, size=64, preprocess="mat_crop",
                            mask_protocol="mat_large_512", domain="portrait", finetune="celebahq")
    cfg = dataclasses.replace(cfg, benchmarks={"celebahq512": bench})
    images, masks = _benchmark(tmp_path, 64)
    out = tmp_path / "samples"
    inpaint_benchmark(cfg, "comodgan", None, None, "celebahq512", images, masks, out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["weights_kind"] == "standin" and meta["display"] == "CoModGAN"
    # Resized back and scored at the benchmark's size whatever sample.score_size says (it is about our pipeline).
    assert cfg.sample.score_size == "model"
    assert meta["resized"] == {"from": 64, "to": 32, "images": "bicubic", "masks": "nearest", "mode": "benchmark",
                               "scored_at": 64}
    assert meta["sampler"]["checkpoint"] == "comodgan_256_ffhq" and "DEVIATION" in meta["sampler"]["checkpoint_note"]
    assert meta["weights"]["kind"] == "standin" and len(meta["weights"]["sha256"]) == 64
    for i in IDS:  # the harness composite: known pixels are the input's own, the hole is filled
        src = np.asarray(Image.open(images / f"{i}.png")).astype(int)
        got = np.asarray(Image.open(out / f"{i}.png")).astype(int)
        hole = np.asarray(Image.open(masks / f"{i}.png")) == 255
        assert np.array_equal(got[~hole], src[~hole]) and np.abs(got[hole] - src[hole]).mean() > 5


def _rec(model: str, benchmark: str, metric: str, value: float, experiment: str, source: str) -> dict:
    return {"model": model, "benchmark": benchmark, "metric": metric, "value": value, "ci_low": None,
            "ci_high": None, "n_images": 8, "scale": "smoke", "weights_kind": "standin", "seed": 0,
            "settings": {"experiment": experiment}, "source_file": source}


BASELINE_CELLS = [  # (model, experiment, benchmark): every cell the baseline suites fill
    *[("lama", "main", b) for b in ("places2_test", "places2_256", "celebahq512", "ffhq256")],
    *[("migan", "main", b) for b in ("places2_test", "places2_256", "ffhq256")],
    ("migan", "ood", "lvis"), ("comodgan", "main", "celebahq512"),
    *[("sd15_inpaint", "main", b) for b in ("places2_test", "celebahq512", "ffhq256")],
]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, dict[str, pd.DataFrame]]:
    records = [_rec(m, b, metric, 20.0 if metric == "fid" else 0.3, e, f"records/{e}/{m}.json")
               for m, e, b in BASELINE_CELLS for metric in ("fid", "lpips")]
    out = {}
    for name, recs in (("with", records), ("without", [])):
        paths = build_tables(recs, REFERENCE, tmp_path_factory.mktemp(name))
        out[name] = {t: pd.read_csv(p) for t, p in paths.items()}
    return out


def _cell(df: pd.DataFrame, method: str, benchmark: str, metric: str = "fid") -> pd.Series:
    sel = df[(df["method"] == method) & (df["benchmark"] == benchmark) & (df["metric"] == metric)]
    assert len(sel) == 1, (method, benchmark, len(sel))
    return sel.iloc[0]


@pytest.mark.parametrize("table, method, benchmark, reported", [
    ("table3", "LaMa", "places2_test", 21.07), ("table3", "LaMa", "places2_256", 22.00),
    ("table3", "MI-GAN", "places2_256", 11.83), ("table3", "SD", "places2_test", 19.73),
    ("table4", "LaMa", "ffhq256", 32.45), ("table4", "MI-GAN", "ffhq256", 27.65),
    ("table4", "CoModGAN", "celebahq512", 5.65), ("table4", "SD", "celebahq512", 11.18),
    ("table7", "MI-GAN", "lvis", 25.88),
])
def test_baseline_cells_are_reproduced_beside_the_paper(tables, table, method, benchmark, reported) -> None:
    row = _cell(tables["with"][table], method, benchmark)
    assert row["reproduced"] == 20.0 and row["reported"] == pytest.approx(reported)
    assert row["weights_kind"] == "standin" and row["rel_delta"] == pytest.approx((20.0 - reported) / reported)
    assert "†" in row["reported_source"] or table == "table7"
    before = _cell(tables["without"][table], method, benchmark)
    assert before["weights_kind"] == "reported" and math.isnan(before["reproduced"])


def test_methods_without_a_checkpoint_stay_reported_with_their_source(tables) -> None:
    ddnm = _cell(tables["with"]["table3"], "DDNM", "places2_large")
    assert ddnm["weights_kind"] == "reported" and math.isnan(ddnm["reproduced"])
    assert ddnm["reported_source"].startswith("Moebius paper Tab. 3 †") and "MAT [23]" in ddnm["reported_source"]
    mat = _cell(tables["with"]["table7"], "MAT", "deepfakeface")
    assert mat["weights_kind"] == "reported" and "Tab. 7" in mat["reported_source"]
    assert _cell(tables["with"]["table4"], "Moebius", "ffhq256")["reported_source"].endswith("(the authors' model)")


def test_table1_is_unchanged_by_the_baselines(tables) -> None:
    pd.testing.assert_frame_equal(tables["with"]["table1"], tables["without"]["table1"])
