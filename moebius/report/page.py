"""The report page ``results/report.md`` and the DVC metrics file ``results/metrics.json``.

The page links every table and figure (relative links, so the results folder can move), states the
provenance of the run (commits, config hashes, scale, data versions, library versions — read from
the records) and summarises per table how far the reproduction is from the paper. Any stand-in
network, generated (random-valued) weight file or smoke-scale number puts a banner at the top: such a
page must never be read as a reproduction of the paper's numbers.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moebius.atomic import write_json, write_text
from moebius.errors import ReportError
from moebius.report.deviations import paper_vs_code_lines
from moebius.report.names import BENCHMARK_NAMES
from moebius.report.schema import TABLES, read_tables


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _slug(text: str) -> str:
    """A metrics key part: lower case, '.' → 'p' (DVC joins nested keys with '.'), others → '_'."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower().replace(".", "p")).strip("_")


def _fmt(x: float, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def table_summary(df: pd.DataFrame) -> dict[str, Any]:
    """Cells, reproduced cells, paired cells, median relative delta (all, FID, LPIPS), weights kinds."""
    rep = df[df["reproduced"].notna()]
    paired = rep[rep["reported"].notna()]

    def med(frame: pd.DataFrame) -> float:
        return float(np.median(frame["rel_delta"])) if len(frame) else math.nan

    return {
        "n_cells": int(len(df)),
        "n_reproduced": int(len(rep)),
        "n_paired": int(len(paired)),
        "median_rel_delta": med(paired),
        "median_rel_delta_fid": med(paired[paired["metric"] == "fid"]),
        "median_rel_delta_lpips": med(paired[paired["metric"] == "lpips"]),
        "weights_kinds": sorted(set(rep["weights_kind"].astype(str))),
        "scales": sorted(set(rep["scale"].astype(str))),
    }


def metrics_of(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, float]]:
    """{table: {"<model>_<benchmark>[_<setting>]_<metric>": reproduced, ..., "median_rel_delta": ...}}."""
    out: dict[str, dict[str, float]] = {}
    for name, df in frames.items():
        flat: dict[str, float] = {}
        for _, row in df[df["reproduced"].notna()].iterrows():
            who = row["model"] if isinstance(row["model"], str) and row["model"] else row["method"]
            parts = [who, "" if row["benchmark"] == "efficiency" else row["benchmark"],
                     "" if pd.isna(row["setting"]) else row["setting"], row["metric"]]
            flat["_".join(_slug(p) for p in parts if _slug(p))] = float(row["reproduced"])
        summary = table_summary(df)
        for key in ("median_rel_delta", "median_rel_delta_fid", "median_rel_delta_lpips"):
            if not math.isnan(summary[key]):
                flat[key] = summary[key]
        flat["n_reproduced"] = summary["n_reproduced"]
        out[name] = flat
    return out


def provenance(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The distinct commits, config hashes, scales, seeds, data versions and library versions of a run."""
    libs: dict[str, set[str]] = defaultdict(set)
    data: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        for lib, ver in (rec.get("library_versions") or {}).items():
            libs[lib].add(str(ver))
        data[rec["benchmark"]].add(str(rec["data_version"]))
    return {
        "git_commit": sorted({str(r["git_commit"]) for r in records}),
        "config_hash": sorted({str(r["config_hash"]) for r in records}),
        "scale": sorted({str(r["scale"]) for r in records}),
        "seed": sorted({str(r["seed"]) for r in records}),
        "weights_kind": sorted({str(r["weights_kind"]) for r in records}),
        "data_version": {b: sorted(v) for b, v in sorted(data.items())},
        "library_versions": {lib: sorted(v) for lib, v in sorted(libs.items())},
        "n_records": len(records),
    }


@dataclass(frozen=True)
class Notice:
    """A warning on top of the report: its level (GitHub alert name), headline and explanation."""

    level: str  # "WARNING" | "NOTE" | "CAUTION"
    headline: str
    detail: str


def notices(prov: dict[str, Any]) -> list[Notice]:
    """What a reader must know before any number: stand-ins, generated weights, smoke scale, mixed provenance."""
    out = []
    if "standin" in prov["weights_kind"]:
        out.append(Notice("WARNING", "Stand-in weights were used.",
                          "Some numbers come from deterministic stand-ins for external networks (Inception, "
                          "LPIPS backbones, E-LatentLPIPS, FLUX / SD3.5): they test the pipeline and are "
                          "not comparable to the paper."))
    if "generated" in prov["weights_kind"]:
        out.append(Notice("WARNING", "Generated weights were used.",
                          "Some numbers come from random-valued files in the official formats (the rehearsal: "
                          "the weights directory's GENERATED.json lists them): they test the full-scale code "
                          "paths and say nothing about the paper's models; not comparable to the paper."))
    if "smoke" in prov["scale"]:
        out.append(Notice("NOTE", "Smoke scale:",
                          "tiny data, tiny models, CPU. Every rule ran; no number here reproduces the paper. "
                          "Run the full scale for that."))
    if len(prov["git_commit"]) > 1 or len(prov["config_hash"]) > 1 or len(prov["scale"]) > 1:
        out.append(Notice("CAUTION", "Records come from more than one commit, config or scale",
                          "(see Provenance)."))
    return out


def _banner(prov: dict[str, Any]) -> list[str]:
    lines = []
    for n in notices(prov):
        lines += [f"> [!{n.level}]", f"> **{n.headline}** {n.detail}", ""]
    return lines


def _one_or_many(values: list[str]) -> str:
    return ", ".join(f"`{v}`" for v in values) if values else "—"


def write_report(tables: dict[str, Path], plots: list[Path], records: list[dict[str, Any]],
                 out_md: Path, metrics_json: Path) -> None:
    """Write the report page and the metrics file from the table CSVs, the PNGs and the records."""
    out_md, metrics_json = Path(out_md), Path(metrics_json)
    if not records:
        raise ReportError("no records: nothing was reproduced, refusing to write an empty report")
    frames = read_tables(tables)
    for png in plots:
        if not Path(png).is_file():
            raise ReportError(f"plot not found: {png}")
    prov = provenance(records)
    here = out_md.parent
    lines = ["# Moebius reproduction report", ""]
    lines += _banner(prov)
    lines += ["Every reproduced number below is one result record; "
              "`moebius.report.trace.trace(table_csv, row)` walks a cell back to it. "
              "`rel Δ` = (reproduced − reported) / reported.", ""]

    lines += ["## Provenance", "",
              f"- scale: {_one_or_many(prov['scale'])}",
              f"- weights kinds: {_one_or_many(prov['weights_kind'])}",
              f"- git commit: {_one_or_many(prov['git_commit'])}",
              f"- config hash: {_one_or_many(prov['config_hash'])}",
              f"- seed: {_one_or_many(prov['seed'])}",
              f"- records: {prov['n_records']}", "",
              "| benchmark | data version |", "| --- | --- |"]
    lines += [f"| {BENCHMARK_NAMES.get(b, b)} | {_one_or_many(v)} |" for b, v in prov["data_version"].items()]
    lines += ["", "| library | version |", "| --- | --- |"]
    lines += [f"| {lib} | {_one_or_many(v)}{' ⚠ mixed' if len(v) > 1 else ''} |"
              for lib, v in prov["library_versions"].items()]

    lines += ["", "## Tables: how far from the paper", "",
              "| table | file | cells reproduced / total | paired with paper | median rel Δ (all) "
              "| median rel Δ FID | median rel Δ LPIPS | weights kinds |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, df in frames.items():
        s = table_summary(df)
        lines.append(f"| {TABLES[name].title} | [{Path(tables[name]).name}]({_rel(tables[name], here)}) "
                     f"| {s['n_reproduced']} / {s['n_cells']} | {s['n_paired']} | {_fmt(s['median_rel_delta'])} "
                     f"| {_fmt(s['median_rel_delta_fid'])} | {_fmt(s['median_rel_delta_lpips'])} "
                     f"| {', '.join(s['weights_kinds']) or 'reported only'} |")

    lines += ["", *paper_vs_code_lines(records)]

    lines += ["## Figures", ""]
    for png in plots:
        rel = _rel(png, here)
        lines += [f"### {Path(png).stem}", "", f"[{Path(png).name}]({rel})", "", f"![{Path(png).stem}]({rel})", ""]
    if not plots:
        lines += ["(no figures were made)", ""]

    write_text(out_md, "\n".join(lines).rstrip() + "\n")
    write_json(metrics_json, metrics_of(frames))
