"""Damaged run folders and concurrent writers, through the real CLI (`moebius train teacher`, resuming).

Each fault ends in one line (`moebius: error: …`, exit 2) or in a resume that says what it fell back to;
never in a traceback. The runs are the real models at the tiny preset (conftest.py), a few steps each.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch
from conftest import one_error_line, tiny_cfg_dict, write_cfg
from safetensors.torch import load_file, save_file

from moebius.errors import TrainError
from moebius.train import RunControl, train_teacher
from moebius.train.state import run_lock

STEP3 = Path("state") / "step-00000003"


@pytest.fixture
def killed(tiny_cfg, vae_dir, tmp_path):
    """A teacher run stopped after step 4 of 6: its last complete checkpoint is step 3."""
    out = tmp_path / "run"
    train_teacher(tiny_cfg, vae_dir, out, RunControl(stop_after=4))
    assert json.loads((out / "state" / "latest.json").read_text())["step"] == 3
    return out


@pytest.fixture
def resume(tmp_path, data_root, vae_dir, moebius_cli):
    """`moebius train teacher --out RUN` (resuming by default) with the tiny config; (code, stderr)."""
    cfg_file = write_cfg(tmp_path / "tiny.yaml", tiny_cfg_dict(data_root))

    def run(out: Path, *extra: str) -> tuple[int, str]:
        return moebius_cli("--config", cfg_file, "train", "teacher", "--vae", vae_dir, "--out", out, *extra)

    return run


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.mark.hostile(
    "state/latest.json torn mid-write (half a JSON object), a complete step-3 checkpoint beside it",
    "a log line names the fallback; the run resumes from step 3 and ends bit-identical to an uninterrupted one",
)
def test_torn_pointer_falls_back_to_the_last_complete_checkpoint(killed, resume, tiny_cfg, vae_dir, tmp_path):
    (killed / "state" / "latest.json").write_text('{"dir": "step-000')
    code, err = resume(killed)
    assert code == 0, err
    assert "latest.json is torn or not JSON" in err and "resuming from the last complete checkpoint" in err
    assert "step-00000003" in err and "from step 3 of 6" in err
    full = train_teacher(tiny_cfg, vae_dir, tmp_path / "full")
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("damage", ["torn pointer", "torn state.json"])
@pytest.mark.hostile(
    "no complete checkpoint left: latest.json torn, or the step folder's state.json torn",
    "one line naming the state folder and --fresh; nothing deleted",
)
def test_no_complete_checkpoint_is_one_line(killed, resume, damage):
    if damage == "torn pointer":
        (killed / "state" / "latest.json").write_text("{")
        (killed / STEP3 / "state.json").unlink()
    else:
        (killed / STEP3 / "state.json").write_text('{"step": 3, "ident')
    code, err = resume(killed)
    line = one_error_line(err)
    assert code == 2 and f"cannot resume {killed}: state/latest.json" in line and "no complete checkpoint is left" in line
    assert "--fresh" in line and (killed / STEP3 / "model.safetensors").is_file()


@pytest.mark.hostile(
    "the checkpoint's model.safetensors truncated to half its bytes",
    "one line naming the file as truncated or corrupt",
)
def test_truncated_weights_are_one_line(killed, resume):
    path = killed / STEP3 / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, err = resume(killed)
    line = one_error_line(err)
    assert code == 2 and f"cannot read {path}: truncated or corrupt safetensors file" in line


@pytest.mark.hostile(
    "the checkpoint's optimizer.pt swapped for a pickle that calls open() when loaded",
    "one line: the file carries code and is refused; the code never runs; no weights_only=False advice",
)
def test_code_carrying_optimizer_state_is_refused(killed, resume, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = killed / STEP3 / "optimizer.pt"
    torch.save({"optimizers": [], "payload": Payload()}, path)
    code, err = resume(killed)
    line = one_error_line(err)
    assert code == 2 and f"refused {path}: it carries code" in line
    assert "weights_only=False" not in err and "trust" not in err
    assert not marker.exists()


@pytest.mark.hostile(
    "checkpoint weights with a key removed, an extra key and a reshaped tensor",
    "one line listing the missing, unexpected and shape-mismatched keys with counts",
)
def test_state_dict_mismatch_names_the_keys(killed, resume):
    path = killed / STEP3 / "model.safetensors"
    state = load_file(str(path))
    del state["embedding_layer.weight"]
    state["diff_model.extra.weight"] = torch.zeros(2)
    state["diff_model.conv_out.weight"] = torch.zeros(4, 8, 1, 1)
    save_file(state, str(path))
    code, err = resume(killed)
    line = one_error_line(err)
    assert code == 2 and f"{path} does not fit RemovalModel" in line
    assert "1 missing: embedding_layer.weight" in line and "1 unexpected: diff_model.extra.weight" in line
    # the tiny teacher's conv_out: 8 channels in, 3x3
    assert "1 shape-mismatched: diff_model.conv_out.weight (4, 8, 1, 1) vs model (4, 8, 3, 3)" in line


@pytest.mark.hostile(
    "a checkpoint written before the resume identity existed (state.json without it)",
    "one line: cannot resume, start over with --fresh",
)
def test_checkpoint_without_identity_refuses(killed, resume):
    meta_path = killed / STEP3 / "state.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("identity")
    meta_path.write_text(json.dumps(meta))
    code, err = resume(killed)
    line = one_error_line(err)
    assert code == 2 and "predates recorded resume settings" in line and "--fresh" in line


@pytest.mark.hostile(
    "temporary files a kill left mid-write (.model.safetensors.*.tmp, .latest.json.*.tmp, .run.json.*.tmp)",
    "removed when the run resumes (a log line counts them); the run finishes",
)
def test_stale_temporary_files_are_removed_on_resume(killed, resume):
    stale = [
        killed / ".run.json.k1ll3d.tmp",
        killed / "state" / ".latest.json.x7.tmp",
        killed / "state" / "step-00000004" / ".model.safetensors.half.tmp",
    ]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    code, err = resume(killed)
    assert code == 0, err
    assert "removed 3 temporary file(s)" in err
    assert not list(killed.rglob("*.tmp")) and (killed / "run.json").is_file()


def _hold(run_dir: Path, ready) -> None:
    with run_lock(run_dir):
        ready.set()
        time.sleep(120)


@pytest.mark.hostile(
    "a second `moebius train` into a run folder while another process trains into it; then the first is kill -9'd",
    "the second gets one line naming the holder's pid; after the kill a new run proceeds (no stale lock)",
)
def test_second_writer_is_refused_until_the_first_dies(killed, resume):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(killed, ready), daemon=True)
    holder.start()
    try:
        assert ready.wait(30)
        code, err = resume(killed)
        line = one_error_line(err)
        assert code == 2 and f"{killed} is in use by another training process (pid {holder.pid})" in line
        assert not (killed / "run.json").exists()
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.join(30)
    assert holder.exitcode == -9
    assert (killed / ".train.lock").read_text().strip() == str(holder.pid)  # the dead holder's lock file stays
    code, err = resume(killed)
    assert code == 0, err
    assert (killed / "run.json").is_file() and (killed / ".train.lock").read_text() == ""


def test_a_second_claim_from_the_same_process_keeps_the_first_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    with run_lock(tmp_path / "run"):
        with pytest.raises(TrainError, match="already being trained by this process"):
            with run_lock(tmp_path / "run"):
                pass
        probe = ctx.Process(target=_try_lock, args=(tmp_path / "run",))  # another process is still refused
        probe.start()
        probe.join(30)
        assert probe.exitcode == 3
    probe = ctx.Process(target=_try_lock, args=(tmp_path / "run",))
    probe.start()
    probe.join(30)
    assert probe.exitcode == 0


def _try_lock(run_dir: Path) -> None:
    try:
        with run_lock(run_dir):
            pass
    except TrainError:
        os._exit(3)
    os._exit(0)
