"""Official weights become run directories (with fake official files: the real ones are not here)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from conftest import PRESET

import moebius.train.official as official
from moebius.errors import TrainError
from moebius.models import build_model, build_vae
from moebius.train import load_run, load_vae, prepare_official, train_teacher, train_vae
from moebius.train.loop import run_digest
from moebius.weights import ENV_VAR, get_weight


@pytest.fixture
def fake_weights(tmp_path, monkeypatch) -> dict[str, Path]:
    """A weights dir holding plain torch.save state dicts, and a resolver that finds them."""
    root = tmp_path / "weights"
    root.mkdir()
    torch.manual_seed(11)
    teacher = build_model("teacher", PRESET)
    files = {"pixelhacker_pretrained": root / "pixelhacker_pretrained.pth", "pixelhacker_ft_places2": root / "ft.pth"}
    torch.save(teacher.state_dict(), files["pixelhacker_pretrained"])
    torch.save({"state_dict": teacher.state_dict()}, files["pixelhacker_ft_places2"])  # wrapped form
    vae = build_vae(PRESET)
    vae.register_to_config(scaling_factor=0.13025)  # SDXL's published value, unlike the preset's 1.0
    torch.save(vae.state_dict(), root / "diffusion_pytorch_model.bin")
    files["sdxl_vae"] = root / "diffusion_pytorch_model.bin"
    (root / "config.json").write_text(vae.to_json_string())
    files["sdxl_vae_config"] = root / "config.json"

    def resolve(name, cfg):
        if name not in files:
            raise TrainError(f"no fake weight {name}")
        return files[name]

    monkeypatch.setattr(official, "_resolve", resolve)
    files["_teacher"] = teacher  # type: ignore[assignment]
    return files


def test_official_teacher_installs_as_a_run(tiny_cfg, fake_weights, tmp_path):
    cfg = dataclasses.replace(tiny_cfg, model=dataclasses.replace(tiny_cfg.model, teacher_source="official"))
    out = train_teacher(cfg, tmp_path / "unused-vae", tmp_path / "teacher")
    model, info = load_run(out)
    assert info["weights_kind"] == "official" and info["weights"] == "pixelhacker_pretrained" and info["steps"] == 0
    for k, v in fake_weights["_teacher"].state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    ft = prepare_official(cfg, "teacher", "ft_places2", tmp_path / "ft")
    assert json.loads((ft / "run.json").read_text())["target"] == "places2"


def test_an_installed_run_reads_the_official_file_without_copying_it(tiny_cfg, fake_weights, tmp_path):
    source = fake_weights["pixelhacker_pretrained"]
    out = tmp_path / "teacher"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"a copy an earlier install wrote")
    prepare_official(tiny_cfg, "teacher", "pretrained", out)
    info = json.loads((out / "run.json").read_text())
    assert not (out / "model.safetensors").exists()  # the superseded copy is gone, none written
    assert Path(info["weights_file"]) == source.resolve() and info["weights_bytes"] == source.stat().st_size
    assert info["weights_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    # downstream runs key their resume identity on the official file's content
    other = prepare_official(tiny_cfg, "teacher", "ft_places2", tmp_path / "ft")
    assert run_digest(out) != run_digest(other) and run_digest(out) != "absent"
    assert run_digest(out) == run_digest(prepare_official(tiny_cfg, "teacher", "pretrained", tmp_path / "again"))


@pytest.mark.hostile("the official file an installed run names, replaced by other weights of the same shapes",
                     "TrainError naming the file and the sha256 installed, before any weights load")
def test_an_installed_run_refuses_a_replaced_official_file(tiny_cfg, fake_weights, tmp_path):
    out = prepare_official(tiny_cfg, "teacher", "pretrained", tmp_path / "teacher")
    torch.manual_seed(12)
    torch.save(build_model("teacher", PRESET).state_dict(), fake_weights["pixelhacker_pretrained"])
    with pytest.raises(TrainError, match="is not the file .* installed"):
        load_run(out)
    fake_weights["pixelhacker_pretrained"].unlink()
    with pytest.raises(TrainError, match="whose file .* is missing"):
        load_run(out)


def test_an_installed_run_finds_its_file_in_this_machines_weights_dir(tiny_cfg, fake_weights, tmp_path,
                                                                       monkeypatch):
    # A run folder pulled with DVC onto another machine: the recorded path is not there, the registry
    # entry resolved in that machine's weights directory is.
    out = prepare_official(tiny_cfg, "vae", "pretrained", tmp_path / "vae")
    elsewhere = tmp_path / "other_machine"
    moved = elsewhere / get_weight("sdxl_vae").path
    moved.parent.mkdir(parents=True)
    fake_weights["sdxl_vae"].rename(moved)
    monkeypatch.setenv(ENV_VAR, str(elsewhere))
    vae = load_vae(out)
    assert vae.config.scaling_factor == pytest.approx(0.13025)
    for k, v in torch.load(moved, weights_only=True).items():
        assert torch.equal(vae.state_dict()[k], v)


def test_official_vae_keeps_its_config(tiny_cfg, fake_weights, tmp_path):
    cfg = dataclasses.replace(tiny_cfg, model=dataclasses.replace(tiny_cfg.model, vae_source="official"))
    out = train_vae(cfg, tmp_path / "vae")
    vae = load_vae(out)
    # The official config's value (0.13025, written by the fixture), not the preset's default.
    assert build_vae(PRESET).config.scaling_factor == 1.0
    assert vae.config.scaling_factor == pytest.approx(0.13025)
    assert json.loads((out / "run.json").read_text())["weights_kind"] == "official"


def test_mismatched_or_unsafe_files_are_clear_errors(tiny_cfg, fake_weights, tmp_path):
    state = torch.load(fake_weights["pixelhacker_pretrained"], weights_only=True)
    state["diff_model.extra.weight"] = torch.zeros(1)
    del state["embedding_layer.weight"]
    torch.save(state, fake_weights["pixelhacker_pretrained"])
    with pytest.raises(TrainError, match="1 missing \\(embedding_layer.weight\\), 1 unexpected"):
        prepare_official(tiny_cfg, "teacher", "pretrained", tmp_path / "a")
    torch.save({"model": build_model("teacher", PRESET)}, fake_weights["pixelhacker_pretrained"])  # a pickled module
    with pytest.raises(TrainError, match="plain state dict"):
        prepare_official(tiny_cfg, "teacher", "pretrained", tmp_path / "b")
    with pytest.raises(TrainError, match="unknown official variant"):
        prepare_official(tiny_cfg, "teacher", "ft_lvis", tmp_path / "c")


def test_a_run_learnt_from_generated_weights_is_generated(tmp_path: Path) -> None:
    from moebius.train.loop import learnt_kind

    def run(name: str, kind: str) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps({"weights_kind": kind}))
        return tmp_path / name

    real_vae, generated_teacher = run("vae", "official"), run("teacher", "generated")
    assert learnt_kind("trained", {"vae": real_vae, "teacher": None}) == "trained"
    assert learnt_kind("trained", {"vae": real_vae, "teacher": generated_teacher}) == "generated"
