"""The smoke-preset models through every run (slow: seconds per step on a 2-core CPU); the default
suite trains the same classes at the ``tiny`` preset (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from moebius.config import config_from_dict
from moebius.train import distill, load_run, train_teacher, train_vae
from moebius.train.state import read_metrics

from conftest import TOY, tiny_cfg_dict, tiny_train, write_dataset


@pytest.mark.slow
def test_real_smoke_models_train_distil_and_reload(tmp_path):
    data = tmp_path / "data"
    write_dataset(data, TOY, "train", 8, seed=1)  # 32 px images, resized to the preset's 64 px
    d = tiny_cfg_dict(data)
    d["model"]["preset"] = "smoke"
    d["vae_train"] = tiny_train(steps=2, batch_size=4, global_batch=4, optimizer="adamw")
    d["teacher_train"] = tiny_train(steps=2, batch_size=2, global_batch=2)
    d["distill"]["train"] = tiny_train(steps=3, batch_size=2, global_batch=2, lr_milestones=[])
    cfg = config_from_dict(d)
    vae = train_vae(cfg, tmp_path / "vae")
    teacher = train_teacher(cfg, vae, tmp_path / "teacher")
    student = distill(cfg, "student", teacher, vae, tmp_path / "student")
    model, info = load_run(student)  # strict load into the real student
    assert info["model"] == "student" and model.coarse_feature_index == 2
    rows = read_metrics(student / "train_metrics.csv")
    assert len(rows) == 3 and all(np.isfinite(r["loss_total"]) for r in rows)
    assert {"w_f_kd", "w_perc", "w_out", "gnorm_c_task"} <= rows[0].keys()  # the official balance (default)
