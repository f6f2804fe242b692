"""The schema of every tidy table, checked before a table is written and again before it is rendered.

One row = one cell of a paper table: (method, benchmark, setting, metric) with the reproduced value,
the reported value and the relative delta (reproduced − reported) / reported. A row without a record
behind it is reported-only (weights_kind "reported"); a row without a paper number is ours-only.
The checks are explicit column/dtype/value rules (no jsonschema: a DataFrame is not JSON, and the
cross-column rules — delta consistency, uniqueness of cells — are what catches real mistakes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moebius.errors import ReportError
from moebius.registry import Registry

# Columns every table has, in this order; table-specific columns (switches, cfg scale...) follow.
COMMON_COLUMNS = (
    "table", "method", "model", "benchmark", "setting", "metric",
    "reproduced", "reported", "rel_delta", "ci_low", "ci_high",
    "scale", "weights_kind", "n_images", "device", "record_source", "record_key",
)
NUMERIC_COLUMNS = ("reproduced", "reported", "rel_delta", "ci_low", "ci_high", "n_images")
CELL_KEY = ("method", "benchmark", "setting", "metric")

SCALES = ("smoke", "rehearsal", "full")
REPRODUCED_KINDS = ("official", "trained", "standin", "generated")
# Kinds whose numbers are labelled wherever they are shown and never share an axis with the paper's:
# deterministic stand-in networks, and random-valued files in the official formats (the rehearsal).
NOT_COMPARABLE_KINDS = ("standin", "generated")
REL_TOL = 1e-6  # rel_delta is recomputed from the two values; CSV round trips keep ~15 digits

EFFICIENCY_METRICS = ("params_b", "tflops", "gflops_torch", "ms_per_step", "ms_per_step_cfg", "steps", "total_s")


@dataclass(frozen=True)
class TableSpec:
    """What one table may contain."""

    file: str  # file name under results/tables/
    title: str  # human title, used by the report page
    benchmarks: tuple[str, ...]
    metrics: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()
    methods: tuple[str, ...] | None = None  # exact method set when the paper's table fixes it


TABLES: Registry[TableSpec] = Registry("table", {
    "table1": TableSpec("table1_headline.csv", "Tab. 1 — headline comparison",
                        ("places2_small", "celebahq512", "ffhq256", "efficiency"),
                        ("fid", "lpips", *EFFICIENCY_METRICS)),
    "table2": TableSpec("table2_architecture_ablation.csv", "Tab. 2 — architecture ablation (Places2 Test)",
                        ("places2_test",), ("fid", "lpips", "params_m", "gflops", "gflops_torch"),
                        ("exp", "self_attention", "cross_attention", "ffn", "conv", "kd"),
                        methods=tuple(f"Exp {i}" for i in range(1, 16))),
    "table3": TableSpec("table3_natural.csv", "Tab. 3 — natural scenes (Places2)",
                        ("places2_test", "places2_large", "places2_small", "places2_256"),
                        ("fid", "lpips"), ("family", "group", "reported_source")),
    "table4": TableSpec("table4_portrait.csv", "Tab. 4 — portraits (CelebA-HQ, FFHQ)",
                        ("celebahq512", "ffhq256"), ("fid", "lpips"), ("family", "group", "reported_source")),
    "table5": TableSpec("table5_loss_ablation.csv", "Tab. 5 — loss ablation (Places2 Test)",
                        ("places2_test",), ("fid", "lpips"), ("c_kd", "f_kd", "task", "perceptual", "note")),
    "table6": TableSpec("table6_cfg_sweep.csv", "Tab. 6 — CFG scale sweep",
                        ("places2_test", "celebahq512"), ("fid", "lpips"), ("domain", "cfg_scale")),
    "table7": TableSpec("table7_ood.csv", "Tab. 7 — out-of-distribution (LVIS, DeepFakeFace)",
                        ("lvis", "deepfakeface"), ("fid", "lpips"), ("group", "reported_source")),
    "efficiency": TableSpec("efficiency.csv", "Efficiency — params, FLOPs, latency, steps, total time",
                            ("efficiency",), EFFICIENCY_METRICS),
})


def columns_of(name: str) -> list[str]:
    """The full column list of a table, in file order."""
    return [*COMMON_COLUMNS, *spec_of(name).extra_columns]


def spec_of(name: str) -> TableSpec:
    """The spec of a table name; an unknown name is an ``UnknownNameError`` with a hint."""
    return TABLES.get(name)


def relative_delta(reproduced: float, reported: float) -> float:
    """(reproduced − reported) / reported; NaN when either is missing or the paper reports 0."""
    if _missing(reproduced) or _missing(reported) or reported == 0:
        return math.nan
    return (reproduced - reported) / reported


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or (
        isinstance(value, str) and value == "")


def _blank(series: pd.Series) -> pd.Series:
    """True where a text cell is empty (NaN after a CSV round trip, or '')."""
    return series.isna() | (series.astype(str).str.strip() == "")


def read_tables(tables: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """The table CSVs as frames, each checked against its schema: a page never renders a malformed or
    missing table (ReportError naming it)."""
    frames: dict[str, pd.DataFrame] = {}
    for name, path in tables.items():
        if not Path(path).is_file():
            raise ReportError(f"table {name} not found: {path}")
        df = pd.read_csv(path)
        validate_table(df, name)
        frames[name] = df
    return frames


def validate_table(df: pd.DataFrame, name: str) -> None:
    """Raise ReportError (one line, naming the first offending row) unless ``df`` follows ``name``'s schema."""
    spec = spec_of(name)
    expected = columns_of(name)
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise ReportError(f"{name}: missing columns {', '.join(missing)}")
    unexpected = [c for c in df.columns if c not in expected]
    if unexpected:
        raise ReportError(f"{name}: unexpected columns {', '.join(map(str, unexpected))}")
    if df.empty:
        raise ReportError(f"{name}: table has no rows")
    for col in NUMERIC_COLUMNS:
        # An all-empty column reads back as float NaN; anything else must already be numeric.
        if not pd.api.types.is_numeric_dtype(df[col]) and not df[col].isna().all():
            raise ReportError(f"{name}: column {col!r} must be numeric, got dtype {df[col].dtype}")

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask.to_numpy())[0])
            row = df.iloc[i]
            raise ReportError(f"{name}: row {i} ({row['method']}/{row['benchmark']}/{row['metric']}) {what}")

    fail(df["table"].astype(str) != name, f"has table != {name!r}")
    fail(_blank(df["method"]), "has no method")
    fail(~df["benchmark"].isin(spec.benchmarks), f"has a benchmark outside {spec.benchmarks}")
    fail(~df["metric"].isin(spec.metrics), f"has a metric outside {spec.metrics}")
    has_rep, has_ref = df["reproduced"].notna(), df["reported"].notna()
    fail(~has_rep & ~has_ref, "has neither a reproduced nor a reported value")
    fail(~has_rep & (df["weights_kind"] != "reported"), "is reported-only but weights_kind is not 'reported'")
    fail(has_rep & ~df["weights_kind"].isin(REPRODUCED_KINDS),
         f"has a reproduced value but weights_kind not in {REPRODUCED_KINDS}")
    fail(has_rep & ~df["scale"].isin(SCALES), f"has a reproduced value but scale not in {SCALES}")
    fail(has_rep & (_blank(df["record_source"]) | _blank(df["record_key"])),
         "has a reproduced value but no record source/key")
    # Quality metrics depend strongly on the image count (MAT #63); cost metrics have none.
    fail(has_rep & df["n_images"].isna() & df["metric"].isin(("fid", "lpips")),
         "has a reproduced FID/LPIPS but no n_images")
    fail(has_rep & df["reproduced"].apply(lambda v: isinstance(v, float) and math.isinf(v)), "has an infinite value")
    expected_delta = pd.Series([relative_delta(a, b) for a, b in zip(df["reproduced"], df["reported"])], index=df.index)
    bad_delta = ~(np.isclose(df["rel_delta"].astype(float), expected_delta, rtol=REL_TOL, atol=1e-9)
                  | (df["rel_delta"].isna() & expected_delta.isna()))
    fail(bad_delta, "has rel_delta inconsistent with (reproduced - reported) / reported")
    key = df[list(CELL_KEY)].astype(str).where(df[list(CELL_KEY)].notna(), "")
    fail(key.duplicated(keep="first"), "duplicates another row's (method, benchmark, setting, metric)")
    if name == "efficiency" or name == "table1":
        fail(has_rep & df["benchmark"].eq("efficiency") & _blank(df["device"]), "is a measured cost without a device")
    if name == "table6":
        fail(df["cfg_scale"].isna(), "has no cfg_scale")
    if spec.methods is not None:
        got = set(df["method"])
        if got != set(spec.methods):
            lacking = sorted(set(spec.methods) - got)
            extra = sorted(got - set(spec.methods))
            raise ReportError(f"{name}: method set differs from the paper's (missing {lacking}, extra {extra})")
