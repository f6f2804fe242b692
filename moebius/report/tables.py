"""Tables 1–7 of the paper (and an efficiency table) as tidy CSVs: reproduced beside reported.

Source: the paper's Tab. 1–7 (numbers transcribed in ``results/reference/*.csv``) and the result
records of this run (``moebius.records``). Nothing else is read: every reproduced number in a table
is one record, named by ``record_source`` (its JSON file) and ``record_key`` (its identity inside that
file), so ``moebius.report.trace`` can walk any cell back to its provenance.

Which record lands in which table is decided by ``settings["experiment"]``, the model key and the
metric (``_cells_of_record``); units are converted to the paper's (``_UNITS``). Two records for the
same cell are an error, never a silent pick.

A cell is reproduced when a record fills it: our models, and the baselines that run here
(``moebius.eval.baselines``: FLUX, SD3.5, SD, LaMa, MAT, MI-GAN, CoModGAN, on the benchmarks where the
paper has their row). Every other cell stays reported-only; Tab. 3, 4 and 7 say in ``reported_source`` which
paper and table each reported number is copied from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from moebius.atomic import atomic_path
from moebius.errors import ReportError, UnknownNameError
from moebius.report.names import EXPERIMENTS, LOSS_ABLATION_KEYS, OURS_ONLY, display_name, model_key
from moebius.report.schema import (
    TABLES,
    columns_of,
    relative_delta,
    spec_of,
    validate_table,
)

__all__ = ["build_tables", "validate_table", "record_key", "table_value", "EXPERIMENTS"]

HEADLINE_MODELS = ("moebius", "pixelhacker", "sd35_inpaint", "flux_fill")  # the four rows of Tab. 1

# Settings that tell two records of one (experiment, model, benchmark, metric) apart. `variant`: rows
# made otherwise than the primary ones (e.g. "start=gt_noised", eval.sampler_starts), shown as `setting`.
_KEY_SETTINGS = ("cfg_scale", "hole_bin", "device", "variant")

# Rows whose reproduction cannot be compared with the paper's number: the table keeps the reported
# value, leaves `reproduced` empty and says why in `note`; the measured value is named beside it.
NOT_COMPARABLE: dict[tuple[str, str], str] = {
    ("table5", "loss_c"): (
        "not comparable: with L_C_KD alone (student feature after its last down block) the up blocks and "
        "conv_out get no gradient and keep their initialisation; the official train_distillation.py cannot "
        "train this row (its loss always adds the output KD, and its adaptive weights differentiate the "
        "task loss, a constant 0 when disabled), so how the paper trained it is unknown"
    ),
}

# Record metric -> (table metric, factor to the paper's unit), for cost metrics. Records keep SI-ish
# raw units (parameter count, GMACs); the paper prints billions / millions and TFLOPs / GFLOPs.
# The paper's "FLOPs" are thop MACs (Tab. 1 Moebius 0.154 TFLOPs = Tab. 2 Exp 9 154 GFLOPs = thop's
# count), so gmacs_thop is paired with them; gflops_torch (2 × MACs convention) has no paper value.
_UNITS: dict[str, dict[str, tuple[str, float]]] = {
    "efficiency": {  # Tab. 1 cost columns and efficiency.csv
        "params": ("params_b", 1e-9),
        "gmacs_thop": ("tflops", 1e-3),
        "gflops_torch": ("gflops_torch", 1.0),
        "ms_per_step": ("ms_per_step", 1.0),
        "ms_per_step_cfg": ("ms_per_step_cfg", 1.0),
        "steps": ("steps", 1.0),
        "total_s": ("total_s", 1.0),
    },
    "table2": {  # Tab. 2 cost columns
        "params": ("params_m", 1e-6),
        "gmacs_thop": ("gflops", 1.0),
        "gflops_torch": ("gflops_torch", 1.0),
    },
}
_QUALITY = ("fid", "lpips")

# Reference files, and the columns of the wide ones that are (benchmark, metric) cells.
_REFERENCE_FILES = {
    "table1": "table1_headline.csv",
    "table2": "table2_architecture_ablation.csv",
    "table3": "table3_natural.csv",
    "table3_efficiency": "table3_efficiency.csv",
    "table4": "table4_portrait.csv",
    "table5": "table5_loss_ablation.csv",
    "table6": "table6_cfg_sweep.csv",
    "table7": "table7_ood.csv",
}
_TABLE1_COLUMNS = {
    "places2_small_fid": ("places2_small", "fid"),
    "places2_small_lpips": ("places2_small", "lpips"),
    "celebahq512_fid": ("celebahq512", "fid"),
    "celebahq512_lpips": ("celebahq512", "lpips"),
    "ffhq256_fid": ("ffhq256", "fid"),
    "ffhq256_lpips": ("ffhq256", "lpips"),
    "params_b": ("efficiency", "params_b"),
    "tflops": ("efficiency", "tflops"),
    "latency_ms_per_step": ("efficiency", "ms_per_step"),
    "steps": ("efficiency", "steps"),
    "total_time_s": ("efficiency", "total_s"),
}
_TABLE7_COLUMNS = {
    "lvis_fid": ("lvis", "fid"),
    "lvis_lpips": ("lvis", "lpips"),
    "deepfakeface_fid": ("deepfakeface", "fid"),
    "deepfakeface_lpips": ("deepfakeface", "lpips"),
}
_OURS_ONLY_EXTRAS = {"family": "classical", "group": "ours only"}

# Where a reported number of Tab. 3, 4 and 7 comes from (``reported_source``). Tab. 3/4 mark every
# cell but Moebius's with † "results reported in the original papers [23, 36, 54, 71]" (MAT, MI-GAN,
# PixelHacker, PowerPaint); Sec. 4.1 names the paper each benchmark's protocol follows. Tab. 7's
# numbers are the authors' own zero-shot runs (its caption). Methods without a public checkpoint that
# loads here (e.g. DDNM, HD-Painter) keep only these cells; LaMa, MAT, MI-GAN, CoModGAN, SD, FLUX and
# SD3.5 are reproduced beside them (moebius.eval.baselines).
_PROTOCOL_ORIGIN = {
    "places2_test": "PowerPaint [71]", "places2_large": "MAT [23]", "places2_small": "MAT [23]",
    "places2_256": "MI-GAN [36]", "celebahq512": "MAT [23]", "ffhq256": "MI-GAN [36]",
}


def reported_source(table: str, method: str, benchmark: str) -> str:
    """The paper and table a reported cell is copied from (for a row of Tab. 3, 4 or 7)."""
    number = table.removeprefix("table")
    if table == "table7":
        return "Moebius paper Tab. 7 (the authors' zero-shot runs with Places2 / CelebA-HQ weights)"
    if method == "Moebius":
        return f"Moebius paper Tab. {number} (the authors' model)"
    return (f"Moebius paper Tab. {number} †, copied from the original papers [23, 36, 54, 71]; "
            f"{benchmark} protocol of {_PROTOCOL_ORIGIN.get(benchmark, '?')}")

Cell = tuple[str, str, str, str, str]  # (table, method, benchmark, setting, metric)


# ---------------------------------------------------------------------------------------------
# Records → cells
# ---------------------------------------------------------------------------------------------

def record_key(record: dict[str, Any]) -> str:
    """A record's identity inside its file: experiment/model/benchmark/metric[?setting=value&...]."""
    settings = record.get("settings") or {}
    base = "/".join(str(x) for x in (settings.get("experiment", "?"), record["model"], record["benchmark"],
                                      record["metric"]))
    extras = [f"{k}={settings[k]}" for k in _KEY_SETTINGS if settings.get(k) is not None]
    return base + ("?" + "&".join(extras) if extras else "")


def _cfg_setting(cfg_scale: float) -> str:
    return f"cfg={float(cfg_scale):g}"


def _experiment(record: dict[str, Any]) -> str:
    exp = (record.get("settings") or {}).get("experiment")
    if exp is None:
        raise ReportError(f"record {record_key(record)} ({record.get('source_file', '?')}) has no settings.experiment")
    try:
        EXPERIMENTS.get(exp)
    except UnknownNameError as exc:
        raise ReportError(f"record {record_key(record)}: {exc}") from None
    return exp


def _cells_of_record(record: dict[str, Any]) -> list[tuple[Cell, float]]:
    """The table cells one record fills, each with the factor from the record's unit to the table's.

    Metrics no table shows (per-hole-bin FID/LPIPS, validation loss) fill no cell.
    """
    exp, model, bench, metric = _experiment(record), record["model"], record["benchmark"], record["metric"]
    settings = record.get("settings") or {}
    try:
        method = display_name(model)
    except UnknownNameError as exc:  # a typo must not create a row
        raise ReportError(f"record {record_key(record)}: {exc}") from None
    is_exp = model.startswith("exp")
    cells: list[tuple[Cell, float]] = []
    variant = str(settings.get("variant") or "")  # "" for the primary rows
    if exp == "main" and metric in _QUALITY:
        for table in ("table3", "table4"):
            if bench in TABLES[table].benchmarks:
                cells.append(((table, method, bench, variant, metric), 1.0))
        if bench in TABLES["table1"].benchmarks and model in HEADLINE_MODELS:
            cells.append((("table1", method, bench, variant, metric), 1.0))
    elif exp in ("efficiency", "ablation_arch") and is_exp and metric in _UNITS["table2"]:
        name, factor = _UNITS["table2"][metric]
        cells.append((("table2", method, "places2_test", "", name), factor))
    elif exp == "efficiency" and metric in _UNITS["efficiency"]:
        name, factor = _UNITS["efficiency"][metric]
        cells.append((("efficiency", method, "efficiency", "", name), factor))
        if model in HEADLINE_MODELS:
            cells.append((("table1", method, "efficiency", "", name), factor))
    elif exp == "ablation_arch" and metric in _QUALITY:
        cells.append((("table2", method, bench, "", metric), 1.0))
    elif exp == "ablation_loss" and metric in _QUALITY:
        cells.append((("table5", method, bench, "", metric), 1.0))
    elif exp == "cfg_sweep" and metric in _QUALITY:
        if settings.get("cfg_scale") is None:
            raise ReportError(f"cfg_sweep record {record_key(record)} has no settings.cfg_scale")
        cells.append((("table6", method, bench, _cfg_setting(settings["cfg_scale"]), metric), 1.0))
    elif exp == "ood" and metric in _QUALITY:
        cells.append((("table7", method, bench, variant, metric), 1.0))
    # Drop cells whose benchmark the table does not show (e.g. a cfg sweep on ffhq256).
    return [(c, f) for c, f in cells if c[2] in TABLES[c[0]].benchmarks]


def table_value(record: dict[str, Any], table: str) -> float:
    """A record's value in the unit ``table`` prints it in (used by ``trace`` to check a cell)."""
    for (tab, *_), factor in _cells_of_record(record):
        if tab == table:
            return float(record["value"]) * factor
    raise ReportError(f"record {record_key(record)} fills no cell of {table}")


# ---------------------------------------------------------------------------------------------
# Reference CSVs → cells
# ---------------------------------------------------------------------------------------------

def _read_reference(reference_dir: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name, file in _REFERENCE_FILES.items():
        path = Path(reference_dir) / file
        if not path.is_file():
            raise ReportError(f"reference table missing: {path}")
        out[name] = pd.read_csv(path)
    return out


def _reference_cells(ref: dict[str, pd.DataFrame]) -> tuple[dict[Cell, float], dict[tuple[str, str], dict]]:
    """Reported values per cell, and table-specific columns per (table, method or benchmark)."""
    reported: dict[Cell, float] = {}
    extras: dict[tuple[str, str], dict] = {}

    def put(cell: Cell, value: Any) -> None:
        if pd.notna(value) and cell not in reported:  # blank = the paper has no number there
            reported[cell] = float(value)

    for _, row in ref["table1"].iterrows():
        for col, (bench, metric) in _TABLE1_COLUMNS.items():
            put(("table1", row["method"], bench, "", metric), row[col])
            if bench == "efficiency":
                put(("efficiency", row["method"], bench, "", metric), row[col])
    # Tab. 3's cost columns cover more methods; Tab. 1 wins where both give a number.
    for _, row in ref["table3_efficiency"].iterrows():
        put(("efficiency", row["method"], "efficiency", "", "params_b"), row["params_b"])
        put(("efficiency", row["method"], "efficiency", "", "ms_per_step"), row["latency_ms_per_step"])
    for _, row in ref["table2"].iterrows():
        method = f"Exp {int(row['exp'])}"
        for metric in ("fid", "lpips", "params_m", "gflops"):
            put(("table2", method, "places2_test", "", metric), row[metric])
        extras[("table2", method)] = {c: row[c] for c in TABLES["table2"].extra_columns}
    for table in ("table3", "table4"):
        for _, row in ref[table].iterrows():
            for metric in _QUALITY:
                put((table, row["method"], row["benchmark"], "", metric), row[metric])
            extras.setdefault((table, row["method"]), {"family": row["family"], "group": row["group"]})
    if len(ref["table5"]) != len(LOSS_ABLATION_KEYS):
        raise ReportError(f"table5 reference has {len(ref['table5'])} rows, expected {len(LOSS_ABLATION_KEYS)}")
    for key, (_, row) in zip(LOSS_ABLATION_KEYS, ref["table5"].iterrows()):
        method = display_name(key)
        for metric in _QUALITY:
            put(("table5", method, "places2_test", "", metric), row[metric])
        extras[("table5", method)] = {c: row.get(c, "") for c in TABLES["table5"].extra_columns}
    for _, row in ref["table6"].iterrows():
        for metric in _QUALITY:
            put(("table6", "Moebius", row["benchmark"], _cfg_setting(row["cfg_scale"]), metric), row[metric])
        extras[("table6", row["benchmark"])] = {"domain": row["domain"]}
    for _, row in ref["table7"].iterrows():
        for col, (bench, metric) in _TABLE7_COLUMNS.items():
            put(("table7", row["method"], bench, "", metric), row[col])
        extras[("table7", row["method"])] = {"group": row["group"]}
    return reported, extras


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------

def _extra_columns(table: str, method: str, benchmark: str, setting: str, model: str,
                   extras: dict[tuple[str, str], dict], has_reported: bool) -> dict[str, Any]:
    cols = spec_of(table).extra_columns
    if not cols:
        return {}
    if table == "table6":
        return {"domain": extras.get((table, benchmark), {}).get("domain", ""),
                "cfg_scale": float(setting.removeprefix("cfg="))}
    found = extras.get((table, method))
    if found is None and model in OURS_ONLY:
        found = {c: _OURS_ONLY_EXTRAS.get(c, "") for c in cols}
    out = {c: (found or {}).get(c, "") for c in cols}
    if "reported_source" in cols:
        out["reported_source"] = reported_source(table, method, benchmark) if has_reported else ""
    return out


def _rows(records: list[dict[str, Any]], ref: dict[str, pd.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    reported, extras = _reference_cells(ref)
    filled: dict[Cell, tuple[dict[str, Any], float]] = {}
    for rec in records:
        for cell, factor in _cells_of_record(rec):
            if cell in filled:
                other = filled[cell][0]
                raise ReportError(
                    f"duplicate records for {cell[0]} cell {'/'.join(c for c in cell[1:] if c)}: "
                    f"{record_key(other)} ({other.get('source_file', '?')}) and "
                    f"{record_key(rec)} ({rec.get('source_file', '?')})")
            filled[cell] = (rec, factor)

    def conv(value: Any, factor: float) -> float:
        return math.nan if value is None else float(value) * factor

    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for cell in list(reported) + [c for c in filled if c not in reported]:
        table, method, bench, setting, metric = cell
        rec, factor = filled.get(cell, (None, 1.0))
        rep = reported.get(cell, math.nan)
        model = rec["model"] if rec else model_key(method)  # "" for methods we never run
        row: dict[str, Any] = {"table": table, "method": method, "model": model, "benchmark": bench,
                               "setting": setting, "metric": metric, "reported": rep}
        note = NOT_COMPARABLE.get((table, model))
        if note is not None and rec is not None:  # measured, but never shown as a reproduction
            note += f"; measured {float(rec['value']) * factor:g} (record {record_key(rec)})"
            rec = None
        if rec is None:
            row.update(reproduced=math.nan, ci_low=math.nan, ci_high=math.nan, scale="",
                       weights_kind="reported", n_images=math.nan, device="", record_source="", record_key="")
        else:
            row.update(reproduced=conv(rec["value"], factor), ci_low=conv(rec.get("ci_low"), factor),
                       ci_high=conv(rec.get("ci_high"), factor), scale=rec["scale"],
                       weights_kind=rec["weights_kind"],
                       n_images=math.nan if rec.get("n_images") is None else float(rec["n_images"]),
                       device=str((rec.get("settings") or {}).get("device") or ""),
                       record_source=str(rec.get("source_file", "")), record_key=record_key(rec))
        row["rel_delta"] = relative_delta(row["reproduced"], rep)
        row.update(_extra_columns(table, method, bench, setting, model, extras, not math.isnan(rep)))
        if "note" in row or note is not None:
            row["note"] = note or ""
        tables[table].append(row)
    return tables


def _ordered(df: pd.DataFrame, name: str, method_order: list[str]) -> pd.DataFrame:
    """Paper order: methods as the reference lists them (ours-only last), then benchmark, setting, metric."""
    spec = spec_of(name)
    rank = {m: i for i, m in enumerate(method_order)}
    keys = pd.DataFrame({
        "m": df["method"].map(lambda m: rank.get(m, len(rank))),
        "mn": df["method"],
        "b": df["benchmark"].map(spec.benchmarks.index),
        "s": df["cfg_scale"] if name == "table6" else df["setting"],
        "x": df["metric"].map(spec.metrics.index),
    })
    order = keys.sort_values(["m", "mn", "b", "s", "x"], kind="stable").index
    return df.loc[order].reset_index(drop=True)


def _method_order(ref: dict[str, pd.DataFrame]) -> list[str]:
    order: list[str] = []
    for frame in (ref["table1"], ref["table3"], ref["table4"], ref["table7"], ref["table3_efficiency"]):
        order += [m for m in frame["method"] if m not in order]
    order += [f"Exp {i}" for i in range(1, 16)] + [display_name(k) for k in LOSS_ABLATION_KEYS]
    return order


def build_tables(records: list[dict[str, Any]], reference_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Write every table as ``out_dir/<file>.csv`` (validated first); return {table name: path}.

    ``records`` come from ``moebius.records.read_records`` (each carries ``source_file``);
    ``reference_dir`` holds the paper's numbers (``results/reference``).
    """
    ref = _read_reference(Path(reference_dir))
    rows = _rows(records, ref)
    order = _method_order(ref)
    frames: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        df = pd.DataFrame(rows[name], columns=columns_of(name))
        df = _ordered(df, name, order)
        validate_table(df, name)  # all tables valid before any is written
        frames[name] = df
    out: dict[str, Path] = {}
    for name, df in frames.items():
        path = Path(out_dir) / TABLES[name].file
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)  # repr floats: exact round trip
        out[name] = path
    return out
