"""Run directories, resumable training state and the run-folder lock (DESIGN.md, checkpoint contract).

A finished run directory ``checkpoints/<run>/`` holds:
- ``model.safetensors``: the trained weights (official key names; loads strict);
- ``run.json``: model name, preset, weights_kind, steps, kd, losses, balance, resolved config, data versions;
- ``train_metrics.csv``: one row per step (step, losses, weights, lr, grad_norm), for ``dvc plots``;
- ``state/``: the resumable state of the last checkpoint, while the run is unfinished (removed once
  ``run.json`` is written: ``drop_state``);
- ``.train.lock``: the lock a training process holds while it writes the folder (empty when none does).
Resumable state lives in ``state/step-<k>/`` (weights, optimiser, RNG, metrics so far, then
``state.json`` last) and the pointer ``state/latest.json`` is replaced last, atomically: a run killed
mid-checkpoint resumes from the previous complete one. Every file goes through ``moebius.atomic``.

Damage is met with one line, never a traceback: a torn ``latest.json`` falls back to the last complete
``step-*`` folder (with a log line saying so), truncated or code-carrying files are named and refused
(``moebius.models.checkpoint``), and the temporary files of a killed write are removed when a run starts.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import fcntl
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from moebius.atomic import atomic_path, write_json, write_text
from moebius.errors import TrainError
from moebius.models.checkpoint import load_weights as _load_checked
from moebius.models.checkpoint import read_safetensors, torch_load

WEIGHTS_NAME = "model.safetensors"
RUN_JSON = "run.json"
METRICS_CSV = "train_metrics.csv"
STATE_DIR = "state"
STATE_JSON = "state.json"  # written last into a step folder: its presence marks the folder complete
LATEST_JSON = "latest.json"
LOCK_NAME = ".train.lock"
OLD_TAG = ".old-"  # `--fresh` moves an earlier run to <run>.old-<UTC time>
_STEP_FILES = (WEIGHTS_NAME, "optimizer.pt", "rng.safetensors", METRICS_CSV, STATE_JSON)

log = logging.getLogger(__name__)


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
    """Load safetensors weights into ``module``; an unreadable file or a key / shape mismatch is a
    one-line ``CheckpointError`` naming the file and the keys (``moebius.models.checkpoint``)."""
    _load_checked(module, path, strict=strict)


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
# The run folder: lock, stale temporary files, moving an earlier run aside
# ---------------------------------------------------------------------------------------------

_HELD: set[tuple[int, int]] = set()  # lock files (device, inode) this process holds: a POSIX lock
# does not refuse its own process, so a second claim from the same process is caught here


def _inode(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``<run_dir>/.train.lock`` for the block; a second writer gets a one-line ``TrainError``.

    A POSIX record lock (``fcntl.lockf``), not ``flock``: the kernel drops it when the holding process
    ends, however it ends (``kill -9`` included), so a lock file left by a dead process never blocks;
    and unlike a ``flock`` it is not shared with forked DataLoader workers, which would keep a killed
    trainer's folder locked until they notice (up to 5 s). The file holds the holder's pid while held.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    if path.exists() and _inode(os.stat(path)) in _HELD:
        # checked before opening: closing any descriptor of the file would drop this process's lock
        raise TrainError(f"{run_dir} is already being trained by this process")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    key = _inode(os.fstat(fd))
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        raise TrainError(
            f"{run_dir} is in use by another training process (pid {holder}); wait for it to end or "
            "stop it (two writers would corrupt its checkpoints)"
        ) from None
    _HELD.add(key)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        _HELD.discard(key)
        try:
            os.ftruncate(fd, 0)  # a finished run's lock file is empty, so re-running it changes no byte
        finally:
            os.close(fd)  # releases the lock


def remove_stale_tmp(run_dir: str | Path) -> list[Path]:
    """Delete the ``.*.tmp`` files a killed writer left in the run folder (call with the lock held)."""
    stale = [p for p in Path(run_dir).rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def holds_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` has anything of a run in it (state, weights, run.json, metrics)."""
    run_dir = Path(run_dir)
    return run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir())


def move_aside(run_dir: str | Path) -> Path:
    """Rename ``run_dir`` to ``<run_dir>.old-<UTC time>`` (never deleted: the user removes it when sure)."""
    run_dir = Path(run_dir)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = run_dir.with_name(f"{run_dir.name}{OLD_TAG}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}{OLD_TAG}{stamp}-{n}")
    os.rename(run_dir, target)
    return target


# ---------------------------------------------------------------------------------------------
# Resumable state
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    """Parsed JSON, or a one-line ``TrainError`` for a torn or unreadable file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainError(f"missing {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrainError(f"{path} is torn or not JSON ({exc})") from None


def read_state_meta(state_dir: str | Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint folder: its step and what the run recorded with it."""
    path = Path(state_dir) / STATE_JSON
    meta = _read_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int) or meta["step"] < 0:
        raise TrainError(f"{path} does not hold a step number")
    return meta


def _complete(step_dir: Path) -> bool:
    if not all((step_dir / name).is_file() for name in _STEP_FILES):
        return False
    try:
        read_state_meta(step_dir)
    except TrainError:
        return False
    return True


def latest_state(run_dir: str | Path) -> Path | None:
    """The folder of the checkpoint to resume from, or None when the run has none.

    ``state/latest.json`` names it. When the pointer is torn, missing or names an incomplete folder,
    the last complete ``step-*`` folder is used instead (a log line says so); when there is none, a
    one-line ``TrainError`` says how to start over.
    """
    root = Path(run_dir) / STATE_DIR
    if not root.is_dir():
        return None
    pointer = root / LATEST_JSON
    shown = f"{STATE_DIR}/{LATEST_JSON}"
    problem = f"{shown} is missing"
    if pointer.exists():
        try:
            name = json.loads(pointer.read_text(encoding="utf-8"))["dir"]
            if not isinstance(name, str) or "/" in name or not name.startswith("step-"):
                raise TypeError(name)
        except (ValueError, UnicodeDecodeError) as exc:
            problem = f"{shown} is torn or not JSON ({exc})"
        except (KeyError, TypeError):
            problem = f"{shown} does not name a step folder"
        else:
            if _complete(root / name):
                return root / name
            problem = f"{shown} names {name}, which is incomplete or missing"
    complete = sorted(d for d in root.glob("step-*") if d.is_dir() and _complete(d))
    if complete:
        log.warning("%s in %s; resuming from the last complete checkpoint %s", problem, run_dir, complete[-1].name)
        return complete[-1]
    if not pointer.exists():
        return None  # killed before the first checkpoint was complete: nothing to resume
    raise TrainError(
        f"cannot resume {run_dir}: {problem}, and no complete checkpoint is left in {STATE_DIR}/; "
        "start over with --fresh (moves the run aside)"
    )


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
    write_json(target / STATE_JSON, {"step": step, **meta})  # last: marks the folder complete
    write_json(root / LATEST_JSON, {"dir": target.name, "step": step})
    for old in root.glob("step-*"):
        if old.is_dir() and old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def drop_state(run_dir: str | Path) -> None:
    """Remove ``state/`` from a finished run (``run.json`` written).

    Nothing can resume from it any more: the step count is part of the resume identity (loop.py), so a
    longer run of the same folder starts over. It holds a copy of the weights and the optimiser's
    moments, 2-3x the model: 2.6 GB for the paper student, up to 6 GB for the larger Table 2 variants,
    about 60 GB over the full DAG's 21 training runs (found by the rehearsal, which filled its disk).
    """
    run_dir = Path(run_dir)
    root = run_dir / STATE_DIR
    if (run_dir / RUN_JSON).is_file() and root.is_dir():
        shutil.rmtree(root)


def load_state(
    state_dir: Path, model: torch.nn.Module
) -> tuple[int, dict, list[dict[str, float]], dict[str, Any]]:
    """Restore weights and RNG into place; return (step, optimiser state, metric rows, meta).

    Every damaged file is a one-line error naming it: ``CheckpointError`` for weights, optimiser and
    RNG files that are truncated, corrupt, carry code or do not fit; ``TrainError`` for the rest.
    """
    state_dir = Path(state_dir)
    meta = read_state_meta(state_dir)
    load_weights(model, state_dir / WEIGHTS_NAME)
    opt = torch_load(state_dir / "optimizer.pt")
    if not isinstance(opt, dict):
        raise TrainError(f"{state_dir / 'optimizer.pt'} does not hold an optimiser state")
    rng = read_safetensors(state_dir / "rng.safetensors")
    if "torch_cpu" not in rng or rng["torch_cpu"].dtype != torch.uint8:
        raise TrainError(f"{state_dir / 'rng.safetensors'} does not hold a CPU random state")
    metrics = state_dir / METRICS_CSV
    try:
        rows = read_metrics(metrics) if metrics.stat().st_size else []
    except (ValueError, TypeError, csv.Error) as exc:
        raise TrainError(f"{metrics} is torn or not a metrics table ({exc})") from None
    try:
        torch.set_rng_state(rng["torch_cpu"])
    except RuntimeError as exc:
        raise TrainError(f"{state_dir / 'rng.safetensors'} holds an invalid CPU random state ({exc})") from None
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["torch_cuda"])
    return int(meta.pop("step")), opt, rows, meta


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The run.json of a finished run directory."""
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise TrainError(f"not a finished run directory (no {RUN_JSON}): {run_dir}")
    info = _read_json(path)
    if not isinstance(info, dict):
        raise TrainError(f"{path} does not hold a run description")
    return info
