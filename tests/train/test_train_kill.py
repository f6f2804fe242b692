"""A real `kill -9` in the middle of a checkpoint write, then a resume: bit-identical to an uninterrupted run.

The runs are `moebius train distill --no-kd` subprocesses on the smoke-preset student, one CPU thread each, so that the same process type on the
same machine must give the same bits. The killed process is stopped at a known point without touching
the package: its driver wraps ``os.replace`` (the rename that publishes every atomic write) and parks
the process just before the step-3 weights would land, with their temporary file fully written. While
it is parked, a second writer is refused; then it gets SIGKILL, and the resumed run must clean up the
temporary file, continue from the complete step-2 checkpoint and end with the uninterrupted run's bits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import one_error_line
from safetensors.torch import load_file

from moebius.data.smoke import make_smoke_dataset
from moebius.train.state import read_metrics

ROOT = Path(__file__).resolve().parents[2]
STEPS = 4
PARK_AT = "state/step-00000003/model.safetensors"

# argv: <park-suffix or ""> <JSON list of `moebius` argument lists, run in turn>. Parks (prints PARKED,
# sleeps) before publishing a file whose path ends with the suffix; otherwise it is `moebius` itself, on
# one thread (several commands in one process only to pay the imports once).
DRIVER = """
import json, os, sys, time
park = sys.argv[1]
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if park and str(dst).endswith(park):
        print("PARKED", flush=True)
        time.sleep(600)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
import torch
torch.set_num_threads(1)
from moebius.cli import main
for argv in json.loads(sys.argv[2]):
    sys.argv = ["moebius", *argv]
    main()
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _moebius(park: str, *commands: list, wait: bool = True):
    cmd = [sys.executable, "-c", DRIVER, park, json.dumps([[str(a) for a in c] for c in commands])]
    if wait:
        return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


@pytest.mark.slow
@pytest.mark.hostile(
    "kill -9 of `moebius train distill` while it writes its step-3 checkpoint; meanwhile a second writer",
    "the second writer gets one line; the resume removes the temp file, continues from step 2, ends bit-identical",
)
def test_kill_9_mid_checkpoint_then_resume_is_bit_identical(tmp_path: Path) -> None:
    make_smoke_dataset("smoke_natural", tmp_path / "data" / "datasets", n_train=4, n_test=1, size=64, seed=0)
    tiny = (
        "{batch_size: 1, global_batch: 1, checkpoint_every: 1, log_every: 1,"
        " datasets: [smoke_natural], num_workers: 0, precision: fp32"
    )
    override = tmp_path / "tiny.yaml"
    override.write_text(
        f"paths: {{data: {tmp_path / 'data'}}}\n"
        f"vae_train: {tiny}, steps: 1, optimizer: adamw, lr_milestones: []}}\n"
        f"distill: {{train: {tiny}, steps: {STEPS}, lr_milestones: [2]}}}}\n"
    )
    cfg = ["--config", "config/smoke.yaml", "--config", override]
    vae, full, part = tmp_path / "vae", tmp_path / "full", tmp_path / "part"

    def distill(out: Path) -> list:
        return [*cfg, "train", "distill", "--student", "student", "--no-kd", "--vae", vae, "--out", out]

    done = _moebius("", [*cfg, "train", "vae", "--out", vae], distill(full))  # the uninterrupted run
    assert done.returncode == 0, done.stderr[-3000:]

    victim = _moebius(PARK_AT, distill(part), wait=False)
    try:
        assert victim.stdout.readline().strip() == "PARKED"  # step 2 is complete, step 3 half-published
        second = _moebius("", distill(part))
        line = one_error_line(second.stderr)
        assert second.returncode == 2 and f"{part} is in use by another training process (pid {victim.pid})" in line
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(60) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    stale = list(part.rglob(".*.tmp"))
    assert [p.parent.name for p in stale] == ["step-00000003"] and not (part / "run.json").exists()

    done = _moebius("", distill(part))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "from step 2 of 4" in done.stderr and "removed 1 temporary file(s)" in done.stderr
    assert not list(part.rglob(".*.tmp"))
    a, b = load_file(str(full / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert a.keys() == b.keys() and len(a) > 100  # the real student, not a stand-in
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    assert read_metrics(full / "train_metrics.csv") == read_metrics(part / "train_metrics.csv")
