"""Schema checks: a table read back from CSV passes; each kind of malformed table is rejected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moebius.errors import ReportError, UnknownNameError
from moebius.report.schema import validate_table


@pytest.fixture()
def table1(built) -> pd.DataFrame:
    return pd.read_csv(built["tables"]["table1"])


def test_written_tables_pass(built):
    for name, path in built["tables"].items():
        validate_table(pd.read_csv(path), name)


def _first_reproduced(df: pd.DataFrame) -> int:
    return int(np.flatnonzero(df["reproduced"].notna())[0])


@pytest.mark.parametrize("breakage, message", [
    (lambda df: df.drop(columns=["reported"]), "missing columns reported"),
    (lambda df: df.assign(extra=1), "unexpected columns extra"),
    (lambda df: df.assign(reproduced=df["reproduced"].astype(str)), "must be numeric"),
    (lambda df: df.assign(rel_delta=df["rel_delta"] * 2 + 0.1), "rel_delta inconsistent"),
    (lambda df: pd.concat([df, df.iloc[[0]]], ignore_index=True), "duplicates another row"),
    (lambda df: df.assign(metric="psnr"), "metric outside"),
    (lambda df: df.assign(weights_kind="reported"), "weights_kind not in"),
    (lambda df: df.assign(scale="medium"), "scale not in"),
    (lambda df: df.assign(record_key=""), "no record source/key"),
    (lambda df: df.assign(reproduced=np.nan, reported=np.nan, rel_delta=np.nan), "neither a reproduced"),
])
def test_malformed_table_is_rejected(table1, breakage, message):
    with pytest.raises(ReportError, match=message):
        validate_table(breakage(table1), "table1")


def test_reported_only_row_must_say_so(table1):
    i = int(np.flatnonzero(table1["reproduced"].isna())[0])
    bad = table1.copy()
    bad.loc[i, "weights_kind"] = "official"
    with pytest.raises(ReportError, match=rf"row {i} .*reported-only"):
        validate_table(bad, "table1")


def test_ablation_table_must_keep_all_15_rows(built):
    df = pd.read_csv(built["tables"]["table2"])
    with pytest.raises(ReportError, match=r"missing \['Exp 15'\]"):
        validate_table(df[df["method"] != "Exp 15"], "table2")


def test_unknown_table_name(table1):
    with pytest.raises(UnknownNameError, match=r"unknown table 'table9' \(did you mean 'table\d'\?\); known: efficiency, table1, table2"):
        validate_table(table1, "table9")
