"""One owner per cross-phase contract: data version, weights root, official-vs-trained weights."""

from __future__ import annotations

import dataclasses
import re

import pytest

from moebius.config import ModelConfig
from moebius.data.manifest import ManifestRow, data_version, manifest_version, write_manifest
from moebius.errors import DataError, UnknownNameError
from moebius.train.batches import data_versions
from moebius.weights import ENV_VAR, weights_root


def _dataset(root, name: str = "toy", split: str = "train"):
    folder = root / "datasets" / name / split
    folder.mkdir(parents=True)
    write_manifest(folder, [ManifestRow("a", "src/a.png", "0" * 64, 8, 8)])
    return folder


def test_training_records_the_same_data_version_as_everything_else(tmp_path) -> None:
    folder = _dataset(tmp_path)
    v = data_version(folder)
    assert len(v) == 12 and v == manifest_version(folder / "manifest.csv")
    assert data_versions(tmp_path, ["toy"], "train") == {"toy/train": v}


@pytest.mark.hostile("a training dataset whose manifest.csv is missing", "DataError naming the file, never 'absent'")
def test_a_missing_manifest_has_no_version(tmp_path) -> None:
    (tmp_path / "datasets" / "toy" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="manifest not found"):
        data_versions(tmp_path, ["toy"], "train")
    with pytest.raises(DataError, match="manifest not found"):
        manifest_version(tmp_path / "masks" / "manifest.csv")


@pytest.mark.hostile("a manifest.csv with a malformed row", "DataError: a malformed manifest is never versioned")
def test_a_malformed_manifest_has_no_version(tmp_path) -> None:
    folder = _dataset(tmp_path)
    (folder / "manifest.csv").write_text("id,source,sha256,width,height\na,x,nothex,8,8\n")
    with pytest.raises(DataError, match="malformed sha256"):
        data_version(folder)


def test_environment_beats_the_config_weights_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert weights_root(tmp_path / "cfg") == tmp_path / "cfg"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert weights_root(tmp_path / "cfg") == tmp_path / "env"  # as README says: $MOEBIUS_WEIGHTS_DIR wins


def test_official_or_trained_is_read_in_one_place() -> None:
    model = dataclasses.replace(ModelConfig(), vae_source="train", teacher_source="official", student_source="train")
    assert [model.weights_source(m) for m in ("vae", "teacher", "pixelhacker", "student", "moebius")] == [
        "train", "official", "official", "train", "train",
    ]
    with pytest.raises(UnknownNameError, match="did you mean 'teacher'"):
        model.weights_source("teacher2")


def test_no_phase_decides_the_weights_root_or_the_weights_source_itself(repo_root) -> None:
    """The copies this replaced read $MOEBIUS_WEIGHTS_DIR or model.*_source directly."""
    offenders = []
    for path in sorted((repo_root / "moebius").rglob("*.py")) + sorted((repo_root / "workflow").rglob("*.smk")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(repo_root).as_posix()
        if rel != "moebius/weights.py" and re.search(r"environ(\.get\(|\[)[\"']MOEBIUS_WEIGHTS_DIR", text):
            offenders.append(f"{rel}: weights root")
        if rel != "moebius/config.py" and re.search(r"\.(vae|teacher|student)_source\b(?!:)", text):
            offenders.append(f"{rel}: weights source")
    assert offenders == []
