"""Run directories and resumable training state (DESIGN.md, checkpoint contract).

A finished run directory ``checkpoints/<run>/`` holds:
- ``model.safetensors``: the trained weights (official key names; loads strict);
- ``run.json``: model name, preset, weights_kind, steps, kd, losses, balance, resolved config, data versions;
- ``train_metrics.csv``: one row per step (step, losses, weights, lr, grad_norm), for ``dvc plots``;
- ``state/``: the resumable state of the last checkpoint.
Resumable state lives in ``state/step-<k>/`` (weights, optimiser, RNG, metrics so far, config) and the
pointer ``state/latest.json`` is replaced last, atomically: a run killed mid-checkpoint resumes from the
previous complete one. Every file goes through ``moebius.atomic``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from moebius.atomic import atomic_path, write_json, write_text
from moebius.errors import TrainError

WEIGHTS_NAME = "model.safetensors"
RUN_JSON = "run.json"
METRICS_CSV = "train_metrics.csv"
STATE_DIR = "state"


# ---------------------------------------------------------------------------------------------
# Tensors and weights
# ---------------------------------------------------------------------------------------------


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors, written atomically (tensors copied to contiguous CPU memory first)."""
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp))


def save_weights(module: torch.nn.Module, path: str | Path) -> None:
    """The module's full state dict (parameters and buffers) as safetensors."""
    save_tensors(path, dict(module.state_dict()))


def load_weights(module: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load safetensors weights into ``module``; a key or shape mismatch is a TrainError."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"weights not found: {path}")
    state = load_file(str(path))
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise TrainError(f"{path} does not fit {type(module).__name__}: {str(exc).splitlines()[0]}") from exc


# ---------------------------------------------------------------------------------------------
# Metrics CSV
# ---------------------------------------------------------------------------------------------


def metrics_csv_text(rows: list[dict[str, float]]) -> str:
    """CSV with a stable column order: step first, then the union of keys in first-seen order."""
    cols: list[str] = ["step"]
    for row in rows:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(float(v)) if k != "step" else int(v)) for k, v in row.items()})
    return buf.getvalue()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a train_metrics.csv (empty cells dropped)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            {k: (int(v) if k == "step" else float(v)) for k, v in row.items() if v != ""}
            for row in csv.DictReader(fh)
        ]


# ---------------------------------------------------------------------------------------------
# Resumable state
# ---------------------------------------------------------------------------------------------


def latest_state(run_dir: str | Path) -> Path | None:
    """The directory of the last complete checkpoint, or None."""
    pointer = Path(run_dir) / STATE_DIR / "latest.json"
    if not pointer.is_file():
        return None
    target = Path(run_dir) / STATE_DIR / json.loads(pointer.read_text(encoding="utf-8"))["dir"]
    return target if (target / "state.json").is_file() else None


def save_state(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer_state: dict,
    rows: list[dict[str, float]],
    meta: dict[str, Any],
) -> Path:
    """Write ``state/step-<step>/`` then point ``state/latest.json`` at it; drop older checkpoints."""
    root = Path(run_dir) / STATE_DIR
    target = root / f"step-{step:08d}"
    target.mkdir(parents=True, exist_ok=True)
    save_weights(model, target / WEIGHTS_NAME)
    with atomic_path(target / "optimizer.pt") as tmp:
        torch.save(optimizer_state, tmp)
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["torch_cuda"] = torch.cuda.get_rng_state()
    save_tensors(target / "rng.safetensors", rng)
    write_text(target / METRICS_CSV, metrics_csv_text(rows))
    write_json(target / "state.json", {"step": step, **meta})
    write_json(root / "latest.json", {"dir": target.name, "step": step})
    for old in root.glob("step-*"):
        if old.is_dir() and old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_state(
    state_dir: Path, model: torch.nn.Module
) -> tuple[int, dict, list[dict[str, float]], dict[str, Any]]:
    """Restore weights and RNG into place; return (step, optimiser state, metric rows, meta)."""
    meta = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
    load_weights(model, state_dir / WEIGHTS_NAME)
    opt = torch.load(state_dir / "optimizer.pt", map_location="cpu", weights_only=True)
    rng = load_file(str(state_dir / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["torch_cuda"])
    metrics = state_dir / METRICS_CSV
    rows = read_metrics(metrics) if metrics.stat().st_size else []
    return int(meta.pop("step")), opt, rows, meta


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The run.json of a finished run directory."""
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise TrainError(f"not a finished run directory (no {RUN_JSON}): {run_dir}")
    return json.loads(path.read_text(encoding="utf-8"))
