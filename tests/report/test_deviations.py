"""The "Paper vs code" section lists every switch and every DEVIATION marker of the code."""

from __future__ import annotations

import re

import pytest
from pathlib import Path

import moebius
from moebius.config import Config
from moebius.report.deviations import collect_markers, measured_effects, paper_vs_code_lines
from moebius.switches import SWITCHES, switch_values


def test_every_marker_in_the_package_is_collected():
    pkg = Path(moebius.__file__).resolve().parent
    expected = sum(len(re.findall(r"#\s*DEVIATION", p.read_text(encoding="utf-8"))) for p in pkg.rglob("*.py"))
    markers = collect_markers()
    assert len(markers) == expected > 5
    lines = paper_vs_code_lines([])
    body = "\n".join(lines)
    for m in markers:
        assert f"`{m.path}:{m.line}`" in body
    assert any(m.path == "moebius/train/balance.py" and "paper §3.3" in m.source for m in markers)


def test_marker_continuation_lines_and_sources(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text(
        "x = 1\n"
        "# DEVIATION (paper §4.1): first line\n"
        "#   and its continuation.\n"
        "y = 2  # DEVIATION (official code): inline one\n"
        "z = 3\n"
        "# DEVIATION: no source given\n",
        encoding="utf-8",
    )
    ms = collect_markers(pkg)
    assert [(m.line, m.source) for m in ms] == [(2, "paper §4.1"), (4, "official code"), (6, "")]
    assert ms[0].text == "first line and its continuation."
    assert ms[0].path == "pkg/a.py"


def test_switch_keys_exist_and_the_run_value_comes_from_the_records():
    cfg = Config()
    values = switch_values(cfg)
    assert set(values) == {s.name for s in SWITCHES}
    assert values["balance"] == cfg.distill.balance and values["sampler_start"] == cfg.sample.start
    recs = [{"settings": {"balance": "official", "sampler_start": "noise"}},
            {"settings": {"balance": "paper", "sampler_start": "noise"}}]
    body = "\n".join(paper_vs_code_lines(recs))
    row = next(line for line in body.splitlines() if line.startswith("| balance |"))
    assert "`official`, `paper`" in row and "`distill.balance`" in row


def _rec(model, bench, metric, value, **settings):
    return {"model": model, "benchmark": bench, "metric": metric, "value": value, "scale": "smoke",
            "settings": {"balance": "official", "guidance": 2.0, **settings}}


def test_the_effect_of_flipping_is_measured_on_records_that_differ_in_that_switch_alone():
    recs = [
        _rec("moebius", "celebahq512", "fid", 10.0, sampler_start="noise"),
        _rec("moebius", "celebahq512", "fid", 7.0, sampler_start="gt_noised", variant="start=gt_noised"),
        _rec("moebius", "ffhq256", "fid", 4.0, sampler_start="noise"),
        _rec("moebius", "ffhq256", "fid", 5.0, sampler_start="gt_noised", variant="start=gt_noised"),
        _rec("moebius", "ffhq256", "lpips", 0.30, sampler_start="noise"),
        _rec("moebius", "ffhq256", "lpips", 0.25, sampler_start="gt_noised"),
        # differs in another setting too: not a pair
        _rec("pixelhacker", "ffhq256", "fid", 1.0, sampler_start="noise"),
        _rec("pixelhacker", "ffhq256", "fid", 99.0, sampler_start="gt_noised", guidance=4.5),
    ]
    effects = {e.metric: e for e in measured_effects(recs, "sampler_start")}
    assert set(effects) == {"fid", "lpips"}
    fid = effects["fid"]
    assert (fid.base, fid.other, fid.n_pairs, fid.scales) == ("gt_noised", "noise", 2, ("smoke",))
    assert fid.mean_delta == pytest.approx(((10.0 - 7.0) + (4.0 - 5.0)) / 2)
    assert effects["lpips"].mean_delta == pytest.approx(0.05) and effects["lpips"].n_pairs == 1
    assert measured_effects(recs, "balance") == ()  # one value only: not measured
    body = "\n".join(paper_vs_code_lines(recs))
    start = next(line for line in body.splitlines() if line.startswith("| sampler_start |"))
    assert "fid: noise − gt_noised = +1 (mean of 2 pairs, smoke scale)" in start
    balance = next(line for line in body.splitlines() if line.startswith("| balance |"))
    assert balance.endswith("| not measured (one value in this run) |")
