"""Generated weights (random-valued files in the official formats) are labelled like stand-ins in the
tables, figures and page: a number from them is never shown as an official-weights result."""

from __future__ import annotations

import pandas as pd
from report_records import REFERENCE_DIR, make_rec

from moebius.report.page import notices, provenance, write_report
from moebius.report.plots import comparable, footnote
from moebius.report.tables import build_tables


def _records(moebius_kind: str) -> list[dict]:
    return [dict(make_rec(model, "places2_small", metric, value, "main", weights_kind=kind), scale="full",
                 source_file=f"main/{model}/places2_small.json")
            for model, kind in (("moebius", moebius_kind), ("pixelhacker", "official"))
            for metric, value in (("fid", 3.0), ("lpips", 0.2))]


def test_generated_rows_are_labelled_and_not_comparable(tmp_path):
    tables = build_tables(_records("generated"), REFERENCE_DIR, tmp_path / "generated")
    t1 = pd.read_csv(tables["table1"])
    rows = t1[t1["reproduced"].notna()]
    assert set(rows.loc[rows["model"] == "moebius", "weights_kind"]) == {"generated"}
    assert set(rows.loc[rows["model"] == "pixelhacker", "weights_kind"]) == {"official"}
    note = footnote([t1])
    assert "generated" in note and "not comparable to the paper" in note and not comparable([t1])
    # the same full-scale records from official files may share the paper's axis: the kind decides
    official = pd.read_csv(build_tables(_records("official"), REFERENCE_DIR, tmp_path / "official")["table1"])
    assert comparable([official]) and "same protocol as the paper" in footnote([official])


def test_generated_weights_put_a_banner_on_the_page(tmp_path):
    records = _records("generated")
    assert any(n.level == "WARNING" and "Generated weights" in n.headline for n in notices(provenance(records)))
    write_report({}, [], records, tmp_path / "report.md", tmp_path / "metrics.json")
    md = (tmp_path / "report.md").read_text()
    assert "Generated weights were used" in md and "`generated`" in md
    assert not any("Generated" in n.headline for n in notices(provenance(_records("official"))))
