"""Training curves in DVCLive's file layout, so that ``dvc plots show`` / ``dvc metrics show`` read them.

DVCLive (``Live.log_metric`` + ``Live.next_step``) writes, under its folder (``dvclive/``):

- ``plots/metrics/<name>.tsv``: a tab-separated series with the header ``step<TAB><name>``, one row per
  logged step (its optional ``timestamp`` column is left out here, as DVCLive does by default, so the
  same run writes the same bytes and DVC sees no change);
- ``metrics.json``: the latest value of every metric, plus ``"step"``.

These are plain files: no dependency on ``dvclive`` is needed to write them. ``dvc.yaml`` points its
``plots`` at ``<run>/dvclive/plots/metrics`` (``x: step``) and its ``metrics`` at
``<run>/dvclive/metrics.json``.

``write_live(run_dir, rows)`` rewrites the whole folder from the rows logged so far (the loop's
``rows``: one dict per optimiser step with ``"step"`` and float metrics). Rewriting instead of
appending keeps every file whole (``moebius.atomic``) and makes a resumed run, whose rows come back
from its checkpoint, write exactly what an uninterrupted run writes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from moebius.atomic import write_json, write_text
from moebius.errors import TrainError

LIVE_DIR = "dvclive"
PLOTS_SUBDIR = "plots/metrics"
SUMMARY = "metrics.json"

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # a metric name is a file name here


def live_dir(run_dir: str | Path) -> Path:
    """``<run_dir>/dvclive``: the folder ``dvc.yaml`` names for this run."""
    return Path(run_dir) / LIVE_DIR


def _value(v: float) -> str:
    return repr(float(v))  # shortest exact round trip; "nan"/"inf" stay readable


def write_live(run_dir: str | Path, rows: Sequence[Mapping[str, float]]) -> Path:
    """Write ``<run_dir>/dvclive/`` (one TSV per metric and ``metrics.json``) from ``rows``; return it.

    A metric missing from some rows has rows only for the steps that logged it. Non-finite values
    are written to the TSV as ``nan``/``inf`` and as ``null`` in ``metrics.json`` (JSON has no NaN).
    """
    out = live_dir(run_dir)
    series: dict[str, list[tuple[int, float]]] = {}
    last_step = None
    for i, row in enumerate(rows):
        if "step" not in row:
            raise TrainError(f"training metrics row {i} has no 'step'")
        step = int(row["step"])
        if last_step is not None and step <= last_step:
            raise TrainError(f"training metrics steps must increase: {step} follows {last_step}")
        last_step = step
        for name, value in row.items():
            if name == "step":
                continue
            if not _NAME_RE.fullmatch(name):
                raise TrainError(f"metric name {name!r} cannot be a file name: use letters, digits, '_', '.', '-'")
            series.setdefault(name, []).append((step, float(value)))
    plots = out / PLOTS_SUBDIR
    if plots.is_dir():  # a series this run no longer logs must not linger from an earlier run here
        for old in plots.glob("*.tsv"):
            if old.stem not in series:
                old.unlink()
    for name, points in series.items():
        lines = [f"step\t{name}"] + [f"{s}\t{_value(v)}" for s, v in points]
        write_text(plots / f"{name}.tsv", "\n".join(lines) + "\n")
    summary: dict[str, float | int | None] = {
        name: (points[-1][1] if math.isfinite(points[-1][1]) else None) for name, points in series.items()
    }
    if last_step is not None:
        summary["step"] = last_step
    write_json(out / SUMMARY, summary)
    return out
