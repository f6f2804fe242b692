"""A run killed after a checkpoint and resumed ends bit-identical to an uninterrupted run; what may\nchange between the two calls (the resume identity) and what may not; --fresh and --no-resume."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TOY, one_error_line, tiny_cfg_dict, tiny_train, write_cfg
from safetensors.torch import load_file

from moebius.config import config_from_dict
from moebius.errors import TrainError
from moebius.train import RunControl, distill, train_teacher
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
    train_teacher(tiny_cfg, vae_dir, part, RunControl(stop_after=3))  # "killed" right after the step-3 checkpoint
    assert not (part / "model.safetensors").exists()
    assert json.loads((part / "state" / "latest.json").read_text())["step"] == 3
    train_teacher(tiny_cfg, vae_dir, part, RunControl(resume=True))  # a fresh call continues from step 3
    _assert_same_weights(full, part)
    assert _same_metrics(full, part)
    assert not (full / "state").exists() and not (part / "state").exists()  # finished: resume state dropped
    rows = read_metrics(part / "train_metrics.csv")
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert rows[2]["lr"] == pytest.approx(1e-3) and rows[3]["lr"] == pytest.approx(5e-4)  # milestone at step 3


def test_distill_resume_with_accumulation_is_bit_identical(data_root, vae_dir, teacher_dir, tmp_path):
    d = tiny_cfg_dict(data_root)
    d["distill"]["train"] = tiny_train(steps=4, batch_size=1, global_batch=2, checkpoint_every=2)
    cfg = config_from_dict(d)
    full = distill(cfg, "student", teacher_dir, vae_dir, tmp_path / "full")
    part = tmp_path / "part"
    distill(cfg, "student", teacher_dir, vae_dir, part, control=RunControl(stop_after=3))  # killed at step 3: last checkpoint is 2
    assert latest_state(part).name == "step-00000002"
    distill(cfg, "student", teacher_dir, vae_dir, part, control=RunControl(resume=True))
    _assert_same_weights(full, part)
    assert _same_metrics(full, part)
    info = json.loads((part / "run.json").read_text())
    assert info["accumulation"] == 2 and info["global_batch"] == 2


def _replace_train(cfg, section: str, **changes):
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})


def test_settings_that_do_not_change_results_still_resume(tiny_cfg, vae_dir, tmp_path):
    full = train_teacher(tiny_cfg, vae_dir, tmp_path / "full")
    part = tmp_path / "part"
    train_teacher(tiny_cfg, vae_dir, part, RunControl(stop_after=4))  # last checkpoint: step 3
    other = _replace_train(tiny_cfg, "teacher_train", log_every=2, checkpoint_every=1, gpus=4)
    other = dataclasses.replace(
        other,
        paths=dataclasses.replace(other.paths, logs=str(tmp_path / "logs"), results=str(tmp_path / "res")),
        eval=dataclasses.replace(other.eval, batch_size=3),  # a section no training run reads
        distill=dataclasses.replace(other.distill, lambda_kd=0.5),  # another run's section
    )
    moved_vae = tmp_path / "elsewhere" / "vae"  # the same VAE under another path: content, not location
    shutil.copytree(vae_dir, moved_vae)
    train_teacher(other, moved_vae, part, RunControl(resume=True))
    _assert_same_weights(full, part)
    assert _same_metrics(full, part)
    assert json.loads((part / "run.json").read_text())["resumed_at_steps"] == [3]
    assert json.loads((full / "run.json").read_text())["resumed_at_steps"] == []


def test_resume_identity_keeps_what_changes_results(tiny_cfg, vae_dir, teacher_dir, tmp_path):
    train_teacher(tiny_cfg, vae_dir, tmp_path / "t", RunControl(stop_after=3))
    distill(tiny_cfg, "student", teacher_dir, vae_dir, tmp_path / "d", control=RunControl(stop_after=3))
    teacher = json.loads((tmp_path / "t" / "state" / "step-00000003" / "state.json").read_text())["identity"]
    student = json.loads((tmp_path / "d" / "state" / "step-00000003" / "state.json").read_text())["identity"]
    for ident in (teacher, student):
        assert {"seed", "train.lr", "train.steps", "train.global_batch", "masks.train_protocols", "model.preset",
                "sample.beta_start", "sample.num_train_timesteps", f"info.data_versions.{TOY}/train", "upstream.vae",
                "steps", "world_size", "autocast"} <= ident.keys()
        assert not {k for k in ident if k.endswith(("log_every", "checkpoint_every", "num_workers", "gpus"))}
        assert not {k for k in ident if k.split(".")[0] in ("paths", "data", "eval", "profile", "weights", "ablation")}
        assert not {"sample.steps", "masks.seed", "info.vae_dir", "model.teacher_source"} & ident.keys()
    assert "distill.lambda_kd" not in teacher and "teacher_train.lr" not in teacher  # other runs' settings
    assert student["distill.lambda_kd"] == 0.01 and student["info.losses"] == ["c_kd", "f_kd", "task", "perceptual"]
    assert student["upstream.teacher"].startswith("sha256:") and "upstream.teacher" not in teacher


def _half_run_and_a_new_lr(tiny_cfg, vae_dir, tmp_path, data_root) -> tuple[Path, Path, dict]:
    """A teacher run stopped after 3 steps at ``tmp_path/run``, and a config file (and its dict) that
    changes teacher_train.lr 1e-3 → 5e-3."""
    out = tmp_path / "run"
    train_teacher(tiny_cfg, vae_dir, out, RunControl(stop_after=3))
    d = tiny_cfg_dict(data_root)
    d["teacher_train"]["lr"] = 5e-3
    return out, write_cfg(tmp_path / "lr.yaml", d), d


@pytest.mark.hostile(
    "resuming a half-trained run after a results-changing setting changed (teacher_train.lr 1e-3 → 5e-3)",
    "one line naming the folder, `train.lr: 0.001 → 0.005` and --fresh; the checkpoint is left untouched",
)
def test_real_change_refuses_and_names_folder_key_and_fresh(tiny_cfg, vae_dir, tmp_path, data_root, moebius_cli):
    out, cfg_file, d = _half_run_and_a_new_lr(tiny_cfg, vae_dir, tmp_path, data_root)
    code, err = moebius_cli("--config", cfg_file, "train", "teacher", "--vae", vae_dir, "--out", out)
    line = one_error_line(err)
    assert code == 2
    assert f"cannot resume {out}" in line and "train.lr: 0.001 → 0.005" in line and "--fresh" in line
    assert json.loads((out / "state" / "latest.json").read_text())["step"] == 3  # untouched


def test_fresh_moves_the_old_run_aside_and_starts_over(tiny_cfg, vae_dir, tmp_path, data_root, moebius_cli):
    out, cfg_file, d = _half_run_and_a_new_lr(tiny_cfg, vae_dir, tmp_path, data_root)
    code, err = moebius_cli("--config", cfg_file, "train", "teacher", "--vae", vae_dir, "--out", out, "--fresh")
    assert code == 0, err
    old = list(tmp_path.glob("run.old-*"))
    assert len(old) == 1 and "moved the earlier run" in err and str(old[0]) in err
    assert json.loads((old[0] / "state" / "latest.json").read_text())["step"] == 3  # kept, not deleted
    reference = train_teacher(config_from_dict(d), vae_dir, tmp_path / "reference")
    _assert_same_weights(reference, out)  # started over with the new lr, from step 0
    assert json.loads((out / "run.json").read_text())["resumed_at_steps"] == []


@pytest.mark.hostile(
    "--no-resume into a folder that already holds a (partial) run",
    "one line naming the folder, --resume and --fresh; nothing overwritten",
)
def test_no_resume_refuses_a_folder_that_holds_a_run(tiny_cfg, vae_dir, tmp_path, moebius_cli, data_root):
    out = tmp_path / "run"
    train_teacher(tiny_cfg, vae_dir, out, RunControl(stop_after=3))
    cfg_file = write_cfg(tmp_path / "c.yaml", tiny_cfg_dict(data_root))
    code, err = moebius_cli("--config", cfg_file, "train", "teacher", "--vae", vae_dir, "--out", out, "--no-resume")
    line = one_error_line(err)
    assert code == 2 and str(out) in line and "--fresh" in line
    assert json.loads((out / "state" / "latest.json").read_text())["step"] == 3


@pytest.mark.hostile(
    "resuming a teacher run after its VAE run was replaced (same path, other config.json)",
    "one line naming upstream.vae and --fresh",
)
def test_changed_upstream_run_refuses(tiny_cfg, vae_dir, tmp_path):
    vae = tmp_path / "vae"
    shutil.copytree(vae_dir, vae)
    out = tmp_path / "run"
    train_teacher(tiny_cfg, vae, out, RunControl(stop_after=3))
    config = json.loads((vae / "config.json").read_text())
    config["scaling_factor"] *= 2
    (vae / "config.json").write_text(json.dumps(config))
    with pytest.raises(TrainError, match=r"upstream\.vae: sha256:.* → sha256:.*--fresh"):
        train_teacher(tiny_cfg, vae, out, RunControl(resume=True))


def test_bad_global_batch_is_an_error(tiny_cfg, vae_dir, tmp_path):
    bad = dataclasses.replace(tiny_cfg, teacher_train=dataclasses.replace(tiny_cfg.teacher_train, global_batch=3))
    with pytest.raises(TrainError, match="multiple"):
        train_teacher(bad, vae_dir, tmp_path / "bad")


def test_resuming_a_finished_run_changes_nothing(tiny_cfg, vae_dir, teacher_dir):
    before = {p.name: p.read_bytes() for p in teacher_dir.iterdir() if p.is_file()}
    train_teacher(tiny_cfg, vae_dir, teacher_dir, RunControl(resume=True))
    after = {p.name: p.read_bytes() for p in teacher_dir.iterdir() if p.is_file()}
    assert before == after


def test_state_left_by_a_kill_after_run_json_is_dropped_on_resume(tiny_cfg, vae_dir, tmp_path, monkeypatch):
    """A kill between run.json and the removal of state/ leaves both: the next call keeps the finished
    weights and removes the dead state (2-3x the model on disk)."""
    from moebius.train import loop

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(loop, "drop_state", lambda run_dir: None)  # the "kill" right after run.json
        train_teacher(tiny_cfg, vae_dir, out)
    assert (out / "state" / "latest.json").is_file() and (out / "run.json").is_file()
    before = load_file(str(out / "model.safetensors"))
    train_teacher(tiny_cfg, vae_dir, out, RunControl(resume=True))
    assert not (out / "state").exists()
    after = load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
