"""The ground-truth leak table: the gt_noised start (closed form and ε ≡ 0 measurement), the paste-back."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from moebius.config import BenchmarkConfig, SampleConfig, load_config
from moebius.diffusion.schedule import scaled_linear_schedule
from moebius.eval.leak import leak_rows, start_leak, write_leak_table


def test_gt_noised_start_keeps_all_of_the_ground_truth_at_snr_0_12() -> None:
    a = scaled_linear_schedule().alpha_bar(900)
    leak = start_leak(SampleConfig(start="gt_noised"), n=8, size=32)
    assert leak["t_start"] == 900 and leak["alpha_bar"] == pytest.approx(a)
    assert leak["gt_snr_final"] == pytest.approx(math.sqrt(a / (1 - a))) == pytest.approx(0.1198, abs=1e-3)
    assert leak["gt_coef_start"] == pytest.approx(math.sqrt(a))
    assert leak["gt_coef_measured"] == pytest.approx(1.0, abs=0.2)  # DDIM with ε ≡ 0 only rescales
    assert leak["gt_snr_measured"] == pytest.approx(leak["gt_snr_final"], rel=0.2)
    # PixelHacker's strength 0.999 starts at the same t = 900 (int(20 · 0.999) = 19 steps)
    assert start_leak(SampleConfig(start="gt_noised", strength=0.999), n=2, size=16)["t_start"] == 900


def test_pure_noise_start_carries_none_of_it() -> None:
    leak = start_leak(SampleConfig(start="noise"), n=8, size=32)
    assert leak["t_start"] == 950 and leak["gt_coef_start"] == 0 and leak["gt_snr_final"] == 0
    assert abs(leak["gt_coef_measured"]) < 0.2 and leak["gt_snr_measured"] < 0.03


def _mask_set(root, size=32, n=3):
    root.mkdir()
    ids = [f"m{i}" for i in range(n)]
    ratios = []
    for k, i in enumerate(ids):
        hole = np.zeros((size, size), np.uint8)
        hole[4:20, 4 + k : 24 + k] = 255
        Image.fromarray(hole).save(root / f"{i}.png")
        ratios.append(float((hole == 255).mean()))
    pd.DataFrame({"id": ids, "polarity": "255_hole", "hole_ratio": ratios}).to_csv(root / "manifest.csv", index=False)
    return root


def test_leak_table_has_both_leaks_per_model(tmp_path, monkeypatch) -> None:
    import moebius.eval.leak as leak_mod

    monkeypatch.setattr(leak_mod, "start_leak", lambda cfg, **kw: start_leak(cfg, n=2, size=16))
    cfg = load_config("config/smoke.yaml")
    bench = BenchmarkConfig(dataset="x", split="test", n_images=3, size=32, preprocess="mat_crop",
                            mask_protocol="p", domain="natural", finetune="places2")
    cfg = dataclasses.replace(cfg, benchmarks={"tiny": bench})
    out = write_leak_table(cfg, tmp_path / "leak.csv", {"tiny": _mask_set(tmp_path / "masks")})
    df = pd.read_csv(out)
    start = df[df["leak"] == "sampler_start"].set_index(["model", "start"])
    assert set(start.index) == {(m, s) for m in ("moebius", "pixelhacker") for s in ("noise", "gt_noised")}
    assert start.loc[("pixelhacker", "gt_noised"), "strength"] == 0.999
    paste = df[df["leak"] == "paste_back"].set_index("model")
    # Moebius pastes through the blurred mask: a few % of each hole is ground truth; PixelHacker pastes nothing
    assert paste.loc["moebius", "paste_back"] == "blurred" and paste.loc["moebius", "n_masks"] == 3
    assert 0.03 < paste.loc["moebius", "hole_weight_from_input"] < 0.3
    assert paste.loc["pixelhacker", "paste_back"] == "none" and paste.loc["pixelhacker", "hole_weight_from_input"] == 0
    assert leak_rows(cfg) and all(r["leak"] == "sampler_start" for r in leak_rows(cfg))


def test_leak_cli_writes_the_csv(tmp_path, monkeypatch) -> None:
    import moebius.eval.leak as leak_mod
    from moebius.cli import cli

    monkeypatch.setattr(leak_mod, "start_leak", lambda cfg, **kw: start_leak(cfg, n=2, size=16))
    result = CliRunner().invoke(cli, ["leak", "--out", str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "l.csv")) == 4
    bad = CliRunner().invoke(cli, ["leak", "--masks", "places2_test", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "BENCHMARK=MASK_DIR" in bad.output
