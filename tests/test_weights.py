"""Weights registry: lookup, one-line missing-file errors, checksum checks, stand-in policy."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from moebius import weights
from moebius.weights import (
    ENV_VAR,
    MissingWeightError,
    UnknownNameError,
    WeightChecksumError,
    get_weight,
    list_weights,
    resolve_or_standin,
    resolve_weight,
    weight_kind,
)

REQUIRED = {
    "inception_fid", "lpips_alexnet_backbone", "lpips_vgg16_backbone", "lpips_alex_head", "lpips_vgg_head",
    "sdxl_vae", "sdxl_vae_config", "elatentlpips_sdxl_vgg16", "elatentlpips_sdxl_vgg16_tuned",
    "flux_fill_dev", "sd35_large_inpainting",
    *(f"{m}_{v}" for m in ("moebius", "pixelhacker") for v in ("pretrained", "ft_places2", "ft_celebahq", "ft_ffhq")),
}


def test_registry_covers_every_external_file():
    keys = {w.key for w in list_weights()}
    assert REQUIRED <= keys
    assert [w.key for w in list_weights()] == sorted(keys)
    for w in list_weights():
        assert w.licence and w.source and w.used_by
        assert w.sha256 is None or len(w.sha256) == 64


def _package_source(package: str, rel: str) -> str:
    """Text of a file of an installed package (read, not imported: importing torch takes ~10 s)."""
    spec = importlib.util.find_spec(package)
    return (Path(spec.origin).parent / rel).read_text(encoding="utf-8")


def test_urls_agree_with_the_installed_packages():
    assert get_weight("inception_fid").url in _package_source("torch_fidelity", "feature_extractor_inceptionv3.py")
    assert get_weight("lpips_alexnet_backbone").url in _package_source("torchvision", "models/alexnet.py")
    assert get_weight("lpips_vgg16_backbone").url in _package_source("torchvision", "models/vgg.py")
    assert get_weight("moebius_ft_places2").url == (
        "https://huggingface.co/hustvl/Moebius/resolve/main/ft_places2/diffusion_pytorch_model.bin"
    )


def test_missing_file_error_is_one_line_naming_file_source_and_destination(tmp_path):
    with pytest.raises(MissingWeightError) as err:
        resolve_weight("moebius_ft_celebahq", tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "diffusion_pytorch_model.bin" in message
    assert "huggingface.co/hustvl/Moebius" in message
    assert str((tmp_path / "moebius/ft_celebahq/diffusion_pytorch_model.bin").resolve()) in message


def test_weights_dir_precedence(tmp_path, monkeypatch):
    rel = get_weight("pixelhacker_ft_ffhq").path
    for d in ("arg", "env", "cwd/weights"):
        (tmp_path / d / rel).parent.mkdir(parents=True)
        (tmp_path / d / rel).write_bytes(d.encode())
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_weight("pixelhacker_ft_ffhq").read_bytes() == b"cwd/weights"
    assert resolve_weight("pixelhacker_ft_ffhq", tmp_path / "arg").read_bytes() == b"arg"
    # the machine's environment variable beats the project's config value
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert resolve_weight("pixelhacker_ft_ffhq").read_bytes() == b"env"
    assert resolve_weight("pixelhacker_ft_ffhq", tmp_path / "arg").read_bytes() == b"env"


def test_torchvision_hash_prefix_is_checked(tmp_path):
    path = tmp_path / get_weight("lpips_alexnet_backbone").path
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the real alexnet")
    with pytest.raises(WeightChecksumError, match="7be5be79"):
        resolve_weight("lpips_alexnet_backbone", tmp_path)
    assert resolve_weight("lpips_alexnet_backbone", tmp_path, verify=False) == path


def test_full_checksum_pass_and_fail(tmp_path, monkeypatch):
    good = b"pretend checkpoint"
    entry = replace(get_weight("sdxl_vae"), sha256=hashlib.sha256(good).hexdigest())
    pinned = weights.Registry("weight", {k: (entry if k == "sdxl_vae" else w) for k, w in weights.WEIGHTS.items()})
    monkeypatch.setattr(weights, "WEIGHTS", pinned)
    path = tmp_path / entry.path
    path.parent.mkdir(parents=True)
    path.write_bytes(good)
    assert resolve_weight("sdxl_vae", tmp_path) == path
    path.write_bytes(b"pretend checkpoint, corrupted")
    with pytest.raises(WeightChecksumError):
        resolve_weight("sdxl_vae", tmp_path)
    with pytest.raises(WeightChecksumError):  # a corrupt file is never silently swapped for a stand-in
        resolve_or_standin("sdxl_vae", allow_standin=True, weights_dir=tmp_path)


def test_lpips_heads_come_from_the_installed_package_and_match_their_digest(tmp_path):
    path = resolve_weight("lpips_alex_head", tmp_path)  # nothing in tmp_path: falls back to the package
    assert path.name == "alex.pth" and "lpips" in str(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == get_weight("lpips_alex_head").sha256
    local = tmp_path / get_weight("lpips_alex_head").path
    local.parent.mkdir(parents=True)
    local.write_bytes(b"bad copy")  # a local copy wins over the package, and is checked
    with pytest.raises(WeightChecksumError):
        resolve_weight("lpips_alex_head", tmp_path)


def test_pipeline_folders_need_model_index(tmp_path):
    folder = tmp_path / get_weight("flux_fill_dev").path
    folder.mkdir(parents=True)
    with pytest.raises(MissingWeightError, match="black-forest-labs/FLUX.1-Fill-dev"):
        resolve_weight("flux_fill_dev", tmp_path)
    (folder / "model_index.json").write_text("{}")
    assert resolve_weight("flux_fill_dev", tmp_path) == folder


def test_resolve_or_standin(tmp_path):
    assert resolve_or_standin("inception_fid", allow_standin=True, weights_dir=tmp_path) == (None, "standin")
    with pytest.raises(MissingWeightError):
        resolve_or_standin("inception_fid", allow_standin=False, weights_dir=tmp_path)
    path = tmp_path / get_weight("inception_fid").path
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    assert resolve_or_standin("inception_fid", allow_standin=False, weights_dir=tmp_path) == (path, "official")


@pytest.mark.hostile("a GENERATED.json ledger in a weights directory vouches for a random file at an official path",
                     "one logged warning naming the ledger; the file's weights kind is 'generated', never 'official'")
def test_a_ledgered_file_is_announced_and_generated(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(weights, "_ANNOUNCED", set())
    key, data = "lpips_alex_head", b"random values, not the published heads"
    path = tmp_path / get_weight(key).path
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    ledger = tmp_path / weights.GENERATED_LEDGER
    ledger.write_text(json.dumps({"files": {key: {"path": get_weight(key).path,
                                                  "sha256": hashlib.sha256(data).hexdigest()}}}))
    with caplog.at_level(logging.WARNING, logger="moebius.weights"):
        assert resolve_weight(key, tmp_path) == path
        assert resolve_or_standin(key, allow_standin=False, weights_dir=tmp_path) == (path, "generated")
    lines = [r.getMessage() for r in caplog.records if r.name == "moebius.weights"]
    assert len(lines) == 1 and key in lines[0] and str(ledger) in lines[0]  # once per key, naming the ledger
    assert weight_kind(key, tmp_path) == "generated"
    path.unlink()  # still ledgered, but absent: the packaged (official) heads are what resolves now
    assert resolve_weight(key, tmp_path) != path and weight_kind(key, tmp_path) == "official"
    ledger.unlink()
    path.write_bytes(data)
    with pytest.raises(WeightChecksumError):  # without the ledger the random file is refused outright
        resolve_weight(key, tmp_path)


def test_unknown_key_hints():
    with pytest.raises(UnknownNameError, match="did you mean 'moebius_ft_ffhq'"):
        resolve_weight("moebius_ft_fhq")
