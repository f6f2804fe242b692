"""A run killed after a checkpoint and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import tiny_cfg_dict, tiny_train
from safetensors.torch import load_file

from moebius.config import config_from_dict
from moebius.errors import TrainError
from moebius.train import distill, train_teacher
from moebius.train.state import latest_state, read_metrics


def _assert_same_weights(a, b):
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _same_metrics(a, b):
    return read_metrics(a / "train_metrics.csv") == read_metrics(b / "train_metrics.csv")


def test_teacher_resume_is_bit_identical(tiny_cfg, vae_dir, tmp_path):
    full = train_teacher(tiny_cfg, vae_dir, tmp_path / "full")
    part = tmp_path / "part"
    train_teacher(tiny_cfg, vae_dir, part, stop_after=3)  # "killed" right after the step-3 checkpoint
    assert not (part / "model.safetensors").exists()
    assert json.loads((part / "state" / "latest.json").read_text())["step"] == 3
    train_teacher(tiny_cfg, vae_dir, part, resume=True)  # a fresh call continues from step 3
    _assert_same_weights(full, part)
    assert _same_metrics(full, part)
    rows = read_metrics(part / "train_metrics.csv")
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert rows[2]["lr"] == pytest.approx(1e-3) and rows[3]["lr"] == pytest.approx(5e-4)  # milestone 0.5


def test_distill_resume_with_accumulation_is_bit_identical(data_root, vae_dir, teacher_dir, tmp_path):
    d = tiny_cfg_dict(data_root)
    d["distill"]["train"] = tiny_train(steps=4, batch_size=1, global_batch=2, checkpoint_every=2)
    cfg = config_from_dict(d)
    full = distill(cfg, "student", teacher_dir, vae_dir, tmp_path / "full")
    part = tmp_path / "part"
    distill(cfg, "student", teacher_dir, vae_dir, part, stop_after=3)  # killed at step 3: last checkpoint is 2
    assert latest_state(part).name == "step-00000002"
    distill(cfg, "student", teacher_dir, vae_dir, part, resume=True)
    _assert_same_weights(full, part)
    assert _same_metrics(full, part)
    info = json.loads((part / "run.json").read_text())
    assert info["accumulation"] == 2 and info["global_batch"] == 2


def test_resume_refuses_a_checkpoint_from_another_config(tiny_cfg, vae_dir, tmp_path):
    out = tmp_path / "run"
    train_teacher(tiny_cfg, vae_dir, out, stop_after=3)
    other = dataclasses.replace(tiny_cfg, teacher_train=dataclasses.replace(tiny_cfg.teacher_train, lr=5e-3))
    with pytest.raises(TrainError, match="different config"):
        train_teacher(other, vae_dir, out, resume=True)


def test_bad_global_batch_is_an_error(tiny_cfg, vae_dir, tmp_path):
    bad = dataclasses.replace(tiny_cfg, teacher_train=dataclasses.replace(tiny_cfg.teacher_train, global_batch=3))
    with pytest.raises(TrainError, match="multiple"):
        train_teacher(bad, vae_dir, tmp_path / "bad")


def test_resuming_a_finished_run_changes_nothing(tiny_cfg, vae_dir, teacher_dir):
    before = {p.name: p.read_bytes() for p in teacher_dir.iterdir() if p.is_file()}
    train_teacher(tiny_cfg, vae_dir, teacher_dir, resume=True)
    after = {p.name: p.read_bytes() for p in teacher_dir.iterdir() if p.is_file()}
    assert before == after
