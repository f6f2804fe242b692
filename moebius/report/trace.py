"""Trace a number: from one cell of a table CSV back to the record (and so the run) that produced it.

A table row names its record by ``record_source`` (the record file) and ``record_key`` (the record's
identity inside it, ``moebius.report.tables.record_key``). Tracing re-reads that file, finds the one
record with that key and checks that it still gives the printed value — a table older than its
records is caught here rather than trusted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from moebius.errors import ReportError
from moebius.report.schema import validate_table
from moebius.report.tables import record_key, table_value


def _locate(source: str, table_csv: Path) -> Path:
    """The record file: as written, or relative to an ancestor of the table (the repo root, usually)."""
    path = Path(source)
    if path.is_file():
        return path
    if not path.is_absolute():
        for base in table_csv.resolve().parents:
            if (base / path).is_file():
                return base / path
    raise ReportError(f"record file {source} (named by {table_csv}) not found")


def trace(table_csv: Path, row_index: int) -> dict[str, Any]:
    """The provenance of row ``row_index`` (0-based, as in the CSV without its header) of a table.

    Returns table, row, method, benchmark, setting, metric, value (as printed), record_value (in the
    record's unit), config_hash, data_version, git_commit, seed, scale, weights_kind, source_file,
    record_key and the full record.
    """
    table_csv = Path(table_csv)
    df = pd.read_csv(table_csv)
    if not 0 <= row_index < len(df):
        raise ReportError(f"{table_csv}: row {row_index} out of range (0..{len(df) - 1})")
    name = str(df["table"].iloc[0])
    validate_table(df, name)
    row = df.iloc[row_index]
    if pd.isna(row["reproduced"]):
        raise ReportError(f"{table_csv}: row {row_index} ({row['method']}/{row['metric']}) is reported-only: "
                          f"the paper's number, no record behind it")
    source = _locate(str(row["record_source"]), table_csv)
    with open(source, encoding="utf-8") as fh:
        records = json.load(fh)
    matches = [r for r in records if record_key(r) == row["record_key"]]
    if len(matches) != 1:
        raise ReportError(f"{source}: {len(matches)} records with key {row['record_key']} (expected 1)")
    rec = matches[0]
    value = table_value(rec, name)
    if not math.isclose(value, float(row["reproduced"]), rel_tol=1e-9, abs_tol=1e-12):
        raise ReportError(f"{table_csv}: row {row_index} prints {row['reproduced']} but its record now gives "
                          f"{value}; rebuild the tables")
    setting = "" if pd.isna(row["setting"]) else str(row["setting"])
    return {
        "table": name, "row": row_index, "method": row["method"], "benchmark": row["benchmark"],
        "setting": setting, "metric": row["metric"], "value": value, "record_value": float(rec["value"]),
        "config_hash": rec["config_hash"], "data_version": rec["data_version"], "git_commit": rec["git_commit"],
        "seed": rec["seed"], "scale": rec["scale"], "weights_kind": rec["weights_kind"],
        "source_file": str(source), "record_key": row["record_key"], "record": rec,
    }
