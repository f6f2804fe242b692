"""Fixtures of the report tests: synthetic records, and the tables built from them once per module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from moebius.records import read_records
from report_records import REFERENCE_DIR, synthetic_records, write_record_files


@pytest.fixture()
def records(tmp_path: Path) -> list[dict[str, Any]]:
    """The synthetic records, read back through ``read_records`` (so each carries ``source_file``)."""
    return read_records(write_record_files(tmp_path, synthetic_records()))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Records, tables and a training/mask CSV built once per test module (plots are the slow part)."""
    import numpy as np
    import pandas as pd

    from moebius.report.tables import build_tables

    root = tmp_path_factory.mktemp("run")
    recs = read_records(write_record_files(root, synthetic_records()))
    tables = build_tables(recs, REFERENCE_DIR, root / "results" / "tables")
    train_csv = root / "checkpoints" / "distill" / "train_metrics.csv"
    train_csv.parent.mkdir(parents=True)
    steps = np.arange(0, 120, 10)
    pd.DataFrame({"step": steps, "loss_total": np.exp(-steps / 50) + 0.1, "loss_c_kd": np.exp(-steps / 40),
                  "w_f_kd": np.linspace(1, 2, steps.size), "lr": 1e-3}).to_csv(train_csv, index=False)
    mask_csv = root / "results" / "masks" / "hole_ratio_stats.csv"
    mask_csv.parent.mkdir(parents=True)
    shares = {f"bin_{10 * k:02d}_{10 * (k + 1):02d}": (0.5 if k in (4, 5) else 0.0) for k in range(10)}
    pd.DataFrame([{"protocol": p, "version": 1, "size": 512, "seed": 0, "n": 200, "mean": 0.45, "median": 0.45,
                   "q25": 0.42, "q75": 0.48, **shares, "share_40_50": 0.9} for p in ("places2_test", "mat_large_512")]
                 ).to_csv(mask_csv, index=False)
    return {"root": root, "records": recs, "tables": tables, "train_csv": train_csv, "mask_csv": mask_csv}
