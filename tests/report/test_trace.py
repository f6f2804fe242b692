"""Tracing a table cell back to its record."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from report_records import REFERENCE_DIR

from moebius.errors import ReportError
from moebius.report.tables import build_tables
from moebius.report.trace import trace


def _row(df: pd.DataFrame, **match) -> int:
    mask = np.logical_and.reduce([df[k].astype(object).fillna("") == v for k, v in match.items()])
    return int(np.flatnonzero(mask)[0])


def test_trace_returns_the_record_behind_a_cell(built):
    csv = built["tables"]["efficiency"]
    i = _row(pd.read_csv(csv), method="PixelHacker", metric="params_b")
    t = trace(csv, i)
    assert t["value"] == pytest.approx(0.862) and t["record_value"] == 8.62e8  # table unit vs record unit
    assert t["config_hash"] == "cfg0123abcd" and t["data_version"] == "efficiency@v1"
    assert t["git_commit"] == "deadbeef" * 5
    assert t["source_file"].endswith("efficiency/pixelhacker/efficiency.json")
    assert t["record"]["metric"] == "params" and t["record"]["model"] == "pixelhacker"


def test_trace_tells_cfg_settings_apart(built):
    csv = built["tables"]["table6"]
    t = trace(csv, _row(pd.read_csv(csv), benchmark="places2_test", setting="cfg=3.5", metric="fid"))
    assert t["record"]["settings"]["cfg_scale"] == 3.5 and t["value"] == 11.0


def test_reported_only_row_has_no_record(built):
    csv = built["tables"]["table3"]
    with pytest.raises(ReportError, match="reported-only"):
        trace(csv, _row(pd.read_csv(csv), method="LaMa", benchmark="places2_test", metric="fid"))


def test_stale_table_is_caught(records, tmp_path):
    tables = build_tables(records, REFERENCE_DIR, tmp_path / "tables")
    csv = tables["table1"]
    i = _row(pd.read_csv(csv), method="Moebius", benchmark="places2_small", metric="fid")
    source = pd.read_csv(csv).loc[i, "record_source"]
    recs = json.loads(open(source).read())
    recs[0]["value"] = 99.0  # the record file changed after the table was built
    with open(source, "w") as fh:
        json.dump(recs, fh)
    with pytest.raises(ReportError, match="rebuild the tables"):
        trace(csv, i)
