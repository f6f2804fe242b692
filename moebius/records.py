"""Result records: every number under `results/` traces back to one of these.

A record is one flat JSON object per (model, benchmark, metric, setting): the value and everything
needed to trust it — scale, weights kind, seed, config hash, git commit, data version, library
versions, and the paper-vs-official switches the run used. Metric jobs write a list of records to a
JSON file; tables are built only from records (`moebius.report.tables`).
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import math
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable

from moebius.atomic import write_json
from moebius.config import Config, config_hash
from moebius.errors import RecordError  # noqa: F401 (re-exported)
from moebius.switches import switch_values

# "generated": random-valued files in the official formats (the rehearsal, moebius.weights.weight_kind);
# like "standin", a number from them is labelled in every table and plot and never compared with the paper.
WEIGHTS_KINDS = ("official", "trained", "standin", "generated", "reported")

REQUIRED_FIELDS = (
    "model",
    "benchmark",
    "metric",
    "value",
    "n_images",
    "scale",
    "weights_kind",
    "seed",
    "config_hash",
    "git_commit",
    "data_version",
)

_LIBRARIES = ("torch", "torchvision", "diffusers", "torch-fidelity", "lpips", "numpy", "opencv-python-headless")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the working tree ('+dirty' if it has uncommitted changes), or 'unknown'."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the libraries that can change a number."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def make_record(
    cfg: Config,
    *,
    model: str,
    benchmark: str,
    metric: str,
    value: float | None,
    n_images: int | None,
    weights_kind: str,
    data_version: str,
    settings: dict[str, Any] | None = None,
    ci: tuple[float, float] | None = None,
    withheld: str | None = None,
) -> dict[str, Any]:
    """One result with its provenance. `settings` holds what varies within a table (cfg scale, exp...).

    ``withheld``: why no number is given (e.g. "too few" images for a per-bin FID); the record then
    has ``value`` None and says so, rather than carrying a made-up number.
    """
    if weights_kind not in WEIGHTS_KINDS:
        raise RecordError(f"weights_kind {weights_kind!r} is not one of {WEIGHTS_KINDS}")
    if withheld is not None:
        if value is not None or not str(withheld).strip():
            raise RecordError(f"{model}/{benchmark}/{metric}: a withheld record has value None and a reason")
    elif not isinstance(value, (int, float)) or math.isnan(float(value)):
        raise RecordError(f"{model}/{benchmark}/{metric}: value {value!r} is not a number")
    record = {
        "model": model,
        "benchmark": benchmark,
        "metric": metric,
        "value": None if withheld is not None else float(value),
        "ci_low": None if ci is None else float(ci[0]),
        "ci_high": None if ci is None else float(ci[1]),
        "n_images": n_images,
        "scale": cfg.scale,
        "weights_kind": weights_kind,
        "seed": cfg.seed,
        "config_hash": config_hash(cfg),
        "git_commit": git_commit(),
        "data_version": data_version,
        "library_versions": library_versions(),
        "settings": {**switch_values(cfg), **(settings or {})},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if withheld is not None:
        record["withheld"] = str(withheld)
    return record


def shown_value(record: dict[str, Any]) -> float | str:
    """What a table or plot shows for a record: its value, or the reason it was withheld ("too few")."""
    return record["withheld"] if record.get("value") is None and record.get("withheld") else record["value"]


def validate_record(record: dict[str, Any]) -> None:
    """Raise RecordError unless the record carries every provenance field."""
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise RecordError(f"record {record.get('model')}/{record.get('metric')} lacks {', '.join(missing)}")
    if record["weights_kind"] not in WEIGHTS_KINDS:
        raise RecordError(f"record has unknown weights_kind {record['weights_kind']!r}")
    if record["value"] is None and not record.get("withheld"):
        raise RecordError(f"record {record.get('model')}/{record.get('metric')} has no value and no 'withheld' reason")


def write_records(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a list of records as JSON, atomically."""
    records = list(records)
    for rec in records:
        validate_record(rec)
    write_json(path, records)


def read_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read and validate every record in the given JSON files."""
    out: list[dict[str, Any]] = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, list):
            raise RecordError(f"{path}: expected a JSON list of records")
        for rec in data:
            validate_record(rec)
            rec.setdefault("source_file", str(path))
            out.append(rec)
    return out
