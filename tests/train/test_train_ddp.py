"""DDP through torchrun: two CPU processes (gloo) run the same distillation code path as one.

The test trains the smoke presets (config/smoke.yaml) for two steps each on a small smoke dataset.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moebius.data.smoke import make_smoke_dataset

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> None:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_two_processes_distill(tmp_path: Path) -> None:
    make_smoke_dataset("smoke_natural", tmp_path / "data" / "datasets", n_train=4, n_test=2, size=64, seed=0)
    override = tmp_path / "ddp.yaml"
    tiny = "{steps: 2, batch_size: 1, global_batch: 2, checkpoint_every: 2, log_every: 1, datasets: [smoke_natural], num_workers: 0, precision: fp32"
    override.write_text(
        f"paths: {{data: {tmp_path / 'data'}}}\n"
        f"vae_train: {tiny}, optimizer: adamw, lr_milestones: []}}\n"
        f"teacher_train: {tiny}}}\n"
        f"distill: {{train: {tiny}, gpus: 2}}}}\n"
    )
    cli = (str(BIN / "moebius"), "--config", "config/smoke.yaml", "--config", str(override))
    run(*cli, "train", "vae", "--out", str(tmp_path / "vae"))
    run(*cli, "train", "teacher", "--vae", str(tmp_path / "vae"), "--out", str(tmp_path / "teacher"))
    run(str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "moebius.cli", *cli[1:], "train",
        "distill", "--student", "student", "--teacher", str(tmp_path / "teacher"), "--vae", str(tmp_path / "vae"),
        "--out", str(tmp_path / "ddp"))
    rows = list(csv.DictReader((tmp_path / "ddp" / "train_metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2]  # rank 0 alone writes the metrics
    assert all(float(r["c_kd"]) > 0 and float(r["loss_total"]) > 0 for r in rows)
    info = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert info["kd"] is True and (tmp_path / "ddp" / "model.safetensors").is_file()
