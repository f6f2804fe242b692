"""The report page links every table and figure, states provenance, and flags stand-ins; metrics.json is flat."""

from __future__ import annotations

import json
import re

import pytest
from report_records import make_rec

from moebius.errors import ReportError
from moebius.report.page import write_report
from moebius.report.plots import make_plots


@pytest.fixture(scope="module")
def page(built):
    results = built["root"] / "results"
    plots = make_plots(results / "tables", results / "plots", {"distill": built["train_csv"]}, built["mask_csv"])
    write_report(built["tables"], plots, built["records"], results / "report.md", results / "metrics.json")
    return {"md": (results / "report.md").read_text(), "results": results, "plots": plots,
            "metrics": json.loads((results / "metrics.json").read_text())}


def test_every_table_and_plot_is_linked_relatively(page, built):
    links = set(re.findall(r"\]\(([^)]+)\)", page["md"]))
    assert all(not link.startswith("/") for link in links)
    for link in links:
        assert (page["results"] / link).is_file(), link
    expected = {f"tables/{p.name}" for p in built["tables"].values()} | {f"plots/{p.name}" for p in page["plots"]}
    assert expected <= links


def test_provenance_and_standin_banner(page):
    md = page["md"]
    assert "Stand-in weights were used" in md and "Smoke scale" in md
    assert "`cfg0123abcd`" in md and "`" + "deadbeef" * 5 + "`" in md and "`places2_small@v1`" in md
    assert "| torch | `2.3.1` |" in md


def test_summary_row_is_computed(page):
    # Tab. 5: records for C_KD alone and all four losses; C_KD alone is "not comparable" (its decoder gets
    # no gradient, tables.NOT_COMPARABLE), so one FID is reproduced (50 vs 26.43) and enters the median.
    expected = (50 - 26.43) / 26.43
    row = next(line for line in page["md"].splitlines() if line.startswith("| Tab. 5"))
    assert "| 1 / 8 | 1 |" in row and f"{expected:+.3f}" in row


def test_metrics_json_is_flat_and_numeric(page):
    m = page["metrics"]
    assert m["table1"]["moebius_places2_small_fid"] == pytest.approx(3.7)
    assert m["table6"]["moebius_celebahq512_cfg_2_fid"] == pytest.approx(5.0)
    assert m["efficiency"]["moebius_params_b"] == pytest.approx(0.226)
    for table, values in m.items():
        assert all(isinstance(v, (int, float)) for v in values.values()), table


def test_no_banner_for_a_clean_full_run(built, tmp_path):
    rec = dict(make_rec("moebius", "places2_small", "fid", 1.0, "main", weights_kind="official"), scale="full")
    write_report({}, [], [rec], tmp_path / "report.md", tmp_path / "metrics.json")
    md = (tmp_path / "report.md").read_text()
    assert "Stand-in" not in md and "Smoke scale" not in md and "`full`" in md


def test_missing_plot_is_an_error(built, tmp_path):
    with pytest.raises(ReportError, match="plot not found"):
        write_report(built["tables"], [tmp_path / "gone.png"], built["records"], tmp_path / "r.md",
                     tmp_path / "m.json")
