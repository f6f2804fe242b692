"""Figures of the report, drawn only from the validated table CSVs (and the training / mask-statistics CSVs).

Figures: the CFG sweep (Tab. 6), the efficiency triangle (params vs latency, bubble = FID on
Places2 Small, Tab. 1/3), the Tab. 2 and Tab. 5 ablation bars, the mask hole-ratio bins and the
training curves. Every figure carries a footnote naming the scale and the weights kinds behind its
reproduced values, so a smoke-scale figure can never pass for the paper's.

Reproduced and reported values share one axis only when they are comparable (full scale, no
stand-in network, no generated weights); otherwise they get separate axes, because smoke-scale FIDs computed with a
stand-in Inception live on a different scale altogether.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from moebius.atomic import atomic_path  # noqa: E402
from moebius.errors import ReportError  # noqa: E402
from moebius.report.names import BENCHMARK_NAMES  # noqa: E402
from moebius.report.schema import NOT_COMPARABLE_KINDS, TABLES, validate_table  # noqa: E402

REPORTED_STYLE = {"color": "0.35", "marker": "o", "ls": "--", "label": "reported (paper)"}
REPRODUCED_STYLE = {"color": "tab:red", "marker": "s", "ls": "-", "label": "reproduced"}
METRIC_LABELS = {"fid": "FID (lower is better)", "lpips": "LPIPS (lower is better)"}
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Reading and labelling
# ---------------------------------------------------------------------------------------------

def read_tables(tables_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table CSV present under ``tables_dir``, validated (a malformed table is never drawn)."""
    out = {}
    for name, spec in TABLES.items():
        path = Path(tables_dir) / spec.file
        if path.is_file():
            df = pd.read_csv(path, keep_default_na=True)
            validate_table(df, name)
            out[name] = df
    return out


def _reproduced(frames: list[pd.DataFrame]) -> pd.DataFrame:
    rows = [df[df["reproduced"].notna()] for df in frames]
    return pd.concat(rows) if rows else pd.DataFrame(columns=["scale", "weights_kind"])


def footnote(frames: list[pd.DataFrame], extra: str = "") -> str:
    """'smoke scale · weights: standin + trained (stand-in networks) — not comparable to the paper'."""
    rep = _reproduced(frames)
    if rep.empty:
        text = "no reproduced values: paper's numbers only"
    else:
        scales = sorted(set(rep["scale"].astype(str)))
        kinds = sorted(set(rep["weights_kind"].astype(str)))
        text = f"{'/'.join(scales)} scale · weights: {' + '.join(kinds)}"
        if "standin" in kinds:
            text += " (stand-in networks, e.g. Inception/LPIPS stand-ins)"
        if "generated" in kinds:
            text += " (generated: random-valued files in the official formats)"
        text += " — same protocol as the paper" if comparable(frames) else " — not comparable to the paper"
    return text + (f" · {extra}" if extra else "")


def comparable(frames: list[pd.DataFrame]) -> bool:
    """True when reproduced numbers may share an axis with the paper's: full scale, no stand-in or
    generated weights (``schema.NOT_COMPARABLE_KINDS``)."""
    rep = _reproduced(frames)
    return (not rep.empty and set(rep["scale"]) == {"full"}
            and not set(rep["weights_kind"]) & set(NOT_COMPARABLE_KINDS))


def save_figure(fig: plt.Figure, path: Path, note: str) -> Path:
    """Write ``fig`` as a PNG with ``note`` as its footnote (scale, weights), atomically; close it."""
    fig.text(0.01, 0.005, note, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    with atomic_path(path) as tmp:
        # No software/date metadata: the same numbers give the same bytes (DVC sees no change).
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def plot_cfg_sweep(t6: pd.DataFrame, out_png: Path) -> Path:
    """Tab. 6: FID and LPIPS against the CFG scale, one column per benchmark."""
    benches = [b for b in TABLES["table6"].benchmarks if b in set(t6["benchmark"])]
    shared = comparable([t6])
    fig, axes = plt.subplots(2, len(benches), figsize=(4.6 * len(benches), 6.2), squeeze=False)
    for j, bench in enumerate(benches):
        for i, metric in enumerate(("fid", "lpips")):
            ax = axes[i, j]
            sub = t6[(t6["benchmark"] == bench) & (t6["metric"] == metric)].sort_values("cfg_scale")
            ref = sub[sub["reported"].notna()]
            ax.plot(ref["cfg_scale"], ref["reported"], **REPORTED_STYLE)
            rep = sub[sub["reproduced"].notna()]
            rax = ax if shared or rep.empty else ax.twinx()  # no empty right axis when nothing was run
            if not rep.empty:
                err = _errorbars(rep)
                label = REPRODUCED_STYLE["label"] + ("" if rax is ax else " (right axis)")
                rax.errorbar(rep["cfg_scale"], rep["reproduced"], yerr=err, capsize=3,
                             **{**REPRODUCED_STYLE, "label": label})
            if rax is not ax:
                rax.set_ylabel(f"reproduced {metric.upper()}", color=REPRODUCED_STYLE["color"])
            ax.set_title(f"{BENCHMARK_NAMES.get(bench, bench)}: {metric.upper()}", fontsize=10)
            ax.set_xlabel("CFG scale (guidance weight, unitless)")
            ax.set_ylabel(METRIC_LABELS[metric] if shared else f"reported {METRIC_LABELS[metric]}")
            handles = ax.get_legend_handles_labels()
            if rax is not ax:
                h2 = rax.get_legend_handles_labels()
                handles = (handles[0] + h2[0], handles[1] + h2[1])
            ax.legend(*handles, fontsize=7, loc="upper center")
    fig.suptitle("Tab. 6 — Moebius quality vs classifier-free guidance scale")
    return save_figure(fig, out_png, footnote([t6], "error bars: bootstrap CI of the reproduced value"))


def _errorbars(rep: pd.DataFrame) -> np.ndarray | None:
    """Asymmetric error bars from ci_low/ci_high, or None when the records carry no CI."""
    if rep["ci_low"].isna().all():
        return None
    lo = (rep["reproduced"] - rep["ci_low"]).clip(lower=0).fillna(0)
    hi = (rep["ci_high"] - rep["reproduced"]).clip(lower=0).fillna(0)
    return np.vstack([lo.to_numpy(), hi.to_numpy()])


def plot_efficiency(eff: pd.DataFrame, t1: pd.DataFrame | None, out_png: Path) -> Path:
    """Params vs latency per step; bubble area ∝ FID on Places2 (Small); paper and ours side by side."""
    fid = {}
    if t1 is not None:
        sel = t1[(t1["benchmark"] == "places2_small") & (t1["metric"] == "fid")]
        fid = {col: dict(zip(sel["method"], sel[col])) for col in ("reported", "reproduced")}
    panels = [("reported", "paper (one L40S, batch 1, 512×512)")]
    rep = eff[eff["reproduced"].notna()]
    if not rep.empty:
        devices = ", ".join(sorted(set(rep["device"].dropna().astype(str)))) or "unknown device"
        panels.append(("reproduced", f"reproduced ({devices})"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.6), squeeze=False)
    for ax, (col, title) in zip(axes[0], panels):
        wide = eff.pivot_table(index="method", columns="metric", values=col, aggfunc="first")
        if not {"params_b", "ms_per_step"} <= set(wide.columns):
            ax.text(0.5, 0.5, "no params + latency pairs", ha="center", transform=ax.transAxes)
            ax.set_title(title, fontsize=10)
            continue
        wide = wide.dropna(subset=["params_b", "ms_per_step"])
        f = np.array([fid.get(col, {}).get(m, math.nan) for m in wide.index], dtype=float)
        has_fid = ~np.isnan(f)
        sizes = np.where(has_fid, 40 + 60 * np.nan_to_num(f), 25)  # area ∝ FID; no FID → small dot
        ax.scatter(wide["params_b"], wide["ms_per_step"], s=sizes, alpha=0.55,
                   c=np.where(has_fid, "tab:blue", "0.6"), edgecolors="k", linewidths=0.5)
        for m, x, y, fv in zip(wide.index, wide["params_b"], wide["ms_per_step"], f):
            ax.annotate(m + ("" if math.isnan(fv) else f" (FID {fv:.2f})"), (x, y), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("parameters (billions, log scale)")
        ax.set_ylabel("latency (ms per denoising step)")
        ax.set_title(title, fontsize=10)
    fig.suptitle("Efficiency — parameters vs latency (bubble area ∝ FID on Places2 Small; grey: no FID)")
    return save_figure(fig, out_png, footnote([eff] + ([t1] if t1 is not None else []),
                                        "latency measured on different hardware is not comparable"))


def plot_ablation_bars(df: pd.DataFrame, name: str, out_png: Path) -> Path:
    """Tab. 2 / Tab. 5: FID per row, reproduced vs reported (shared axis only when comparable)."""
    sub = df[df["metric"] == "fid"]
    methods = list(dict.fromkeys(sub["method"]))
    rep = sub.set_index("method")["reproduced"].reindex(methods)
    ref = sub.set_index("method")["reported"].reindex(methods)
    x = np.arange(len(methods))
    shared = comparable([df])
    width = max(6.0, 0.55 * len(methods) + 2)
    if shared:
        fig, ax = plt.subplots(figsize=(width, 4.2))
        ax.bar(x - 0.2, ref, 0.4, color=REPORTED_STYLE["color"], label="reported (paper)")
        ax.bar(x + 0.2, rep, 0.4, color=REPRODUCED_STYLE["color"], label="reproduced")
        ax.set_ylabel("FID (lower is better)")
        ax.legend(fontsize=8)
        axes = [ax]
    else:
        fig, axes = plt.subplots(2, 1, figsize=(width, 6.0), sharex=True)
        axes[0].bar(x, ref, 0.6, color=REPORTED_STYLE["color"])
        axes[0].set_ylabel("reported FID (paper)")
        axes[1].bar(x, rep, 0.6, color=REPRODUCED_STYLE["color"])
        axes[1].set_ylabel("reproduced FID")
        notes = sub.set_index("method")["note"].reindex(methods) if "note" in sub.columns else [None] * len(methods)
        for xi, v, note in zip(x, rep, notes):
            if math.isnan(v):
                why = "not comparable" if str(note).startswith("not comparable") else "not run"
                axes[1].text(xi, 0, why, rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")
    crowded = len(methods) > 6  # 15 experiment names overlap unless slanted
    axes[-1].set_xticks(x, methods, rotation=30 if crowded else 0, ha="right" if crowded else "center", fontsize=8)
    axes[-1].set_xlabel("experiment" if name == "table2" else "losses used (cumulative)")
    fig.suptitle(f"{TABLES[name].title}: FID, reproduced vs reported")
    return save_figure(fig, out_png, footnote([df]))


def plot_mask_stats(stats_csv: Path, out_png: Path, note: str) -> Path:
    """Share of masks per 10 % hole-area bin, one panel per protocol (from the mask module's CSV)."""
    stats = pd.read_csv(stats_csv)
    bins = [c for c in stats.columns if c.startswith("bin_")]
    label_col = "protocol" if "protocol" in stats.columns else stats.columns[0]
    if stats.empty or not bins:
        raise ReportError(f"{stats_csv}: no rows or no bin_* columns to plot")
    n = len(stats)
    ncols = min(4, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.6 * nrows + 0.9), sharey=True, squeeze=False)
    centers = np.arange(len(bins)) * 10 + 5
    for ax, (_, row) in zip(axes.flat, stats.iterrows()):
        ax.bar(centers, 100 * row[bins].to_numpy(dtype=float), width=9, color="tab:blue")
        if "mean" in row and pd.notna(row["mean"]):
            ax.axvline(100 * row["mean"], color="tab:orange", lw=1.2, label="mean")
        ax.set_title(f"{row[label_col]} (n={int(row['n']) if 'n' in row else '?'})", fontsize=9)
        ax.set_xlim(0, 100)
    for ax in axes[-1]:
        ax.set_xlabel("hole area (% of image, 10 % bins)")
    for ax in axes[:, 0]:
        ax.set_ylabel("masks (% of n)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Mask protocols — hole-area distribution (orange: mean)")
    return save_figure(fig, out_png, note)


def plot_training_curves(run: str, csv: Path, out_png: Path, note: str) -> Path:
    """Losses, balance weights and learning rate of one run against the optimiser step."""
    df = pd.read_csv(csv)
    if "step" not in df.columns or df.empty:
        raise ReportError(f"{csv}: training metrics need a 'step' column and at least one row")
    numeric = [c for c in df.columns if c != "step" and pd.api.types.is_numeric_dtype(df[c])]
    groups = [("losses", [c for c in numeric if c.startswith("loss")], "loss (unitless)"),
              ("adaptive weights", [c for c in numeric if c.startswith("w_")], "weight (unitless)"),
              ("learning rate", [c for c in numeric if c == "lr"], "learning rate"),
              ("other", [c for c in numeric if not (c.startswith(("loss", "w_")) or c == "lr")], "value")]
    groups = [g for g in groups if g[1]]
    if not groups:
        raise ReportError(f"{csv}: no numeric columns besides 'step'")
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 2.4 * len(groups) + 0.8), sharex=True, squeeze=False)
    for ax, (title, cols, ylabel) in zip(axes[:, 0], groups):
        for c in cols:
            ax.plot(df["step"], df[c], label=c, lw=1.2)
        values = df[cols].to_numpy(dtype=float)
        if title == "losses" and np.nanmin(values) > 0:
            ax.set_yscale("log")  # losses span decades; a linear axis hides the late curve
            ylabel += ", log scale"
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, ncols=min(4, len(cols)))
    axes[-1, 0].set_xlabel("optimiser step")
    fig.suptitle(f"Training curves — {run}")
    return save_figure(fig, out_png, note)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

def draw_all(tasks: list[tuple[Callable[..., T], tuple]], workers: int = 1) -> list[T]:
    """``[fn(*args) for fn, args in tasks]``: independent figures, each writing its own file, drawn in
    ``workers`` forked processes when that is more than 1 (and the platform forks).

    Why: matplotlib draws on one core, and a report has ~40 figures (0.5 s each at smoke scale; the
    report is the DAG's last job, with the other cores idle). Same files as drawn one by one; the first
    error is raised as the task raised it.
    """
    if workers <= 1 or len(tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(*args) for fn, args in tasks]
    context = multiprocessing.get_context("fork")  # the children inherit the imports and the Agg backend
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        futures = [pool.submit(fn, *args) for fn, args in tasks]
        return [f.result() for f in futures]


def make_plots(tables_dir: Path, out_dir: Path, train_metrics: dict[str, Path],
               mask_stats_csv: Path | None, workers: int = 1) -> list[Path]:
    """Draw every figure whose inputs exist (in ``workers`` processes); return the PNG paths written
    under ``out_dir``."""
    out_dir = Path(out_dir)
    tables = read_tables(Path(tables_dir))
    tasks: list[tuple[Callable[..., Path], tuple]] = []
    if "table6" in tables:
        tasks.append((plot_cfg_sweep, (tables["table6"], out_dir / "cfg_sweep.png")))
    if "efficiency" in tables:
        tasks.append((plot_efficiency, (tables["efficiency"], tables.get("table1"), out_dir / "efficiency.png")))
    for name, file in (("table2", "table2_architecture_ablation.png"), ("table5", "table5_loss_ablation.png")):
        if name in tables:
            tasks.append((plot_ablation_bars, (tables[name], name, out_dir / file)))
    fair = comparable(list(tables.values()))
    scales = "/".join(sorted(set(_reproduced(list(tables.values()))["scale"].astype(str)))) or "unknown"
    train_note = f"{scales} scale · weights: trained (this run)" + (
        "" if fair else " · run used smoke settings or stand-in networks — not comparable to the paper")
    if mask_stats_csv is not None and Path(mask_stats_csv).is_file():
        tasks.append((plot_mask_stats, (Path(mask_stats_csv), out_dir / "mask_hole_ratio.png",
                                        f"{scales} scale · masks only, no weights involved")))
    for run, csv in sorted(train_metrics.items()):
        if not Path(csv).is_file():
            raise ReportError(f"training metrics for run {run!r} not found: {csv}")
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run)
        tasks.append((plot_training_curves, (run, Path(csv), out_dir / f"train_{safe}.png", train_note)))
    return draw_all(tasks, workers)
