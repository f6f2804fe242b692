"""LaMa, MI-GAN and CoModGAN: stand-ins through the official-format loader, safety, checksums, export."""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from moebius.config import load_config
from moebius.errors import EvalError, WeightError
from moebius.eval import baseline_torchscript as ts
from moebius.eval.baselines import provenance, run_baseline, weights_kind


def _images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # 8-bit levels, as read from a PNG
    return (torch.randint(0, 256, (b, 3, size, size), generator=g).float() / 127.5 - 1.0)


def _box(b: int, size: int) -> torch.Tensor:
    masks = torch.zeros(b, 1, size, size)
    masks[:, :, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    return masks


# ------------------------------------------------------------------------------------------ LaMa


def test_pad_symmetric_is_numpys_symmetric_mode() -> None:
    x = torch.arange(2 * 3 * 13 * 10, dtype=torch.float32).reshape(2, 3, 13, 10)
    got = ts.pad_symmetric(x, 8)
    want = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 6)), mode="symmetric")  # LaMa's pad_img_to_modulo
    assert got.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(got.numpy(), want)


def test_lama_standin_loads_through_the_official_loader_and_inpaints(tmp_path) -> None:
    # The stand-in file is a TorchScript archive like big-lama.pt, and refuses sides off a multiple of 8.
    model = ts.load_torchscript(ts.write_standin("lama", "lama_big_lama", None, tmp_path))
    image, hole = (_images(1, 36) + 1) / 2, _box(1, 36)
    with pytest.raises(torch.jit.Error, match="multiples of 8"):
        model(image, hole)
    run = ts._lama_runner(model, torch.device("cpu"))  # pads to 40, crops back to 36
    out = run(image * 2 - 1, hole, [0], None)
    assert out.shape == (1, 3, 36, 36) and out.min() >= -1 and out.max() <= 1
    known = (hole < 0.5).expand_as(out)
    # The model pastes the image back; predict.py's truncation to uint8 costs at most one level.
    assert (out - (image * 2 - 1))[known].abs().max() <= 2 / 255 + 1e-6
    levels = (out + 1) / 2 * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # whole 8-bit levels, as predict.py writes
    assert (out - (image * 2 - 1))[~known].abs().max() > 0.05  # the hole is filled, not copied


def test_lama_runs_at_smoke_scale_as_a_standin(smoke_cfg) -> None:
    images, masks = _images(2, 64), _box(2, 64)
    out = run_baseline(smoke_cfg, "lama", images, masks, [1, 2], benchmark="places2_test")
    assert out.shape == images.shape
    assert weights_kind(smoke_cfg, "lama", "places2_test") == "standin"
    info = provenance(smoke_cfg, "lama", "places2_test")
    assert info["kind"] == "standin" and info["file"] is None and len(info["sha256"]) == 64


# --------------------------------------------------------------------------------- MI-GAN / CoModGAN


def test_migan_standin_runs_at_its_native_size_only(smoke_cfg) -> None:
    images, masks = _images(2, 32), _box(2, 32)
    out = run_baseline(smoke_cfg, "migan", images, masks, [3, 4], benchmark="places2_256")  # 256 → 32 px
    known = (masks < 0.5).expand_as(out)
    assert torch.equal(out[known], images[known])  # evaluate_fid_lpips.py's composite, in float
    assert (out - images)[~known].abs().max() > 0.05
    with pytest.raises(EvalError, match="runs at 32x32 px only"):
        run_baseline(smoke_cfg, "migan", _images(1, 64), _box(1, 64), [3], benchmark="places2_256")


def test_migan_input_is_known_minus_half_and_masked_image(tmp_path) -> None:
    # Pin the call signature: a scripted module that returns its own input channels 1..3 and channel 0.
    class Echo(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x[:, 0:1], x[:, 1:3]], dim=1)

    torch.jit.save(torch.jit.script(Echo()), str(tmp_path / "echo.pt"))
    run = ts._gan_runner(ts.load_torchscript(tmp_path / "echo.pt"), 16, torch.device("cpu"), "migan")
    images, masks = _images(1, 16), _box(1, 16)
    out = run(images, masks, [0], None)
    hole = masks[0, 0] > 0.5
    # In the hole: channel 0 is known − 0.5 = −0.5, channels 1-2 are image·known = 0.
    assert torch.allclose(out[0, 0][hole], torch.tensor(-0.5)) and out[0, 1:][:, hole].abs().max() == 0


def test_comodgan_is_seeded_per_image_not_per_batch(smoke_cfg) -> None:
    images, masks = _images(2, 32, seed=1), _box(2, 32)
    both = run_baseline(smoke_cfg, "comodgan", images, masks, [10, 11], benchmark="celebahq512")
    second = run_baseline(smoke_cfg, "comodgan", images[1:], masks[1:], [11], benchmark="celebahq512")
    torch.testing.assert_close(second, both[1:], atol=1e-6, rtol=0)
    other = run_baseline(smoke_cfg, "comodgan", images[1:], masks[1:], [12], benchmark="celebahq512")
    assert (other - second).abs().max() > 1e-3  # the seed draws the noise
    torch.manual_seed(0)
    state = torch.get_rng_state()
    run_baseline(smoke_cfg, "comodgan", images[:1], masks[:1], [10], benchmark="celebahq512")
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left as it was


# ------------------------------------------------------------------------------ files and safety


def _full(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MOEBIUS_WEIGHTS_DIR", str(tmp_path))
    return load_config("config/full.yaml")


class _Evil:
    """Unpickling this creates the marker file: it must never happen."""

    marker: Path

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.hostile("a pickle (plain, torch.save zip, or a TorchScript zip whose data.pkl is a pickle "
                     "bomb) at the path of a TorchScript weight", "one-line EvalError; the pickle's code never runs")
@pytest.mark.parametrize("how", ["plain_pickle", "torch_save", "doctored_torchscript"])
def test_a_pickle_in_place_of_torchscript_is_refused_unexecuted(tmp_path, monkeypatch, how) -> None:
    cfg = _full(tmp_path / "w", monkeypatch)
    marker = tmp_path / "executed"
    evil = _Evil()
    evil.marker = marker
    target = tmp_path / "w" / "migan" / "migan_256_ffhq_traced.pt"
    target.parent.mkdir(parents=True)
    if how == "plain_pickle":
        target.write_bytes(pickle.dumps(evil))
    elif how == "torch_save":
        torch.save({"w": evil}, target)
    else:
        good = ts.write_standin("migan", "migan_256_ffhq", 256, tmp_path)
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w") as dst:
            for item in src.infolist():
                # protocol 2, the one TorchScript reads: the refusal comes from its restricted unpickler
                data = pickle.dumps(evil, protocol=2) if item.filename.endswith("/data.pkl") else src.read(item)
                dst.writestr(item, data)
    with pytest.raises(EvalError, match="TorchScript archive") as err:
        run_baseline(cfg, "migan", _images(1, 256), _box(1, 256), [0], benchmark="ffhq256")
    assert "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.hostile("a big-lama.pt whose bytes differ from IOPaint's published md5",
                     "one-line EvalError naming both md5s before the file is loaded")
def test_lama_file_with_the_wrong_md5_is_refused(tmp_path, monkeypatch) -> None:
    cfg = _full(tmp_path, monkeypatch)
    (tmp_path / "lama").mkdir()
    ts.write_standin("lama", "lama_big_lama", None, tmp_path / "lama").rename(tmp_path / "lama" / "big-lama.pt")
    with pytest.raises(EvalError, match=f"does not match the published {ts.PUBLISHED_MD5['lama_big_lama']}"):
        run_baseline(cfg, "lama", _images(1, 64), _box(1, 64), [0], benchmark="places2_test")


def test_an_official_file_is_loaded_and_its_sha256_recorded(tmp_path, monkeypatch) -> None:
    # No md5 is published for the exported MI-GAN 256 files: the sha256 seen is recorded instead.
    cfg = _full(tmp_path, monkeypatch)
    (tmp_path / "migan").mkdir()
    file = ts.write_standin("migan", "migan_256_ffhq", 256, tmp_path / "migan")
    file.rename(tmp_path / "migan" / "migan_256_ffhq_traced.pt")
    out = run_baseline(cfg, "migan", _images(1, 256), _box(1, 256), [0], benchmark="ffhq256")
    assert out.shape == (1, 3, 256, 256)
    info = provenance(cfg, "migan", "ffhq256")
    assert info["kind"] == "official" and info["md5_published"] is None
    assert info["sha256"] == ts.file_digest(tmp_path / "migan" / "migan_256_ffhq_traced.pt", "sha256")


# ------------------------------------------------------------------------------------------ export

_FAKE_MIGAN = '''
import torch
from torch import nn


class Generator(nn.Module):
    """Stands for MI-GAN's lib/model_zoo/migan_inference.Generator: fixed-size, (1,4,R,R) -> (1,3,R,R)."""

    def __init__(self, resolution=256):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)
        self.register_buffer("filter_const", torch.ones(1, 1, resolution, resolution))

    def forward(self, x):
        return torch.tanh(self.conv(x) * self.filter_const)
'''


def _fake_repo(root: Path) -> Path:
    (root / "lib" / "model_zoo").mkdir(parents=True)
    (root / "lib" / "__init__.py").write_text("")
    (root / "lib" / "model_zoo" / "__init__.py").write_text("")
    (root / "lib" / "model_zoo" / "migan_inference.py").write_text(_FAKE_MIGAN)
    return root


def test_export_traces_a_state_dict_into_the_registry_file(tmp_path, monkeypatch) -> None:
    repo = _fake_repo(tmp_path / "MI-GAN")
    monkeypatch.syspath_prepend(str(repo))
    from lib.model_zoo.migan_inference import Generator  # the repository's own class

    torch.manual_seed(0)
    eager = Generator(256).eval()
    torch.save(eager.state_dict(), tmp_path / "migan_256_places2.pt")
    monkeypatch.setenv("MOEBIUS_WEIGHTS_DIR", str(tmp_path / "w"))
    out = ts.export_gan("migan_256_places2", repo, tmp_path / "migan_256_places2.pt", device="cpu")
    assert out == tmp_path / "w" / "migan" / "migan_256_places2_traced.pt"
    cfg = load_config("config/full.yaml")
    images, masks = _images(1, 256), _box(1, 256)
    got = run_baseline(cfg, "migan", images, masks, [0], benchmark="places2_256")
    known = 1 - masks
    with torch.no_grad():
        want = known * images + masks * eager(torch.cat([known - 0.5, images * known], 1)).clamp(-1, 1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.hostile("export-gan given a pickle with a code-running object instead of a state dict",
                     "one-line WeightError (torch.load weights_only); the object's code never runs")
def test_export_refuses_a_pickle_that_is_not_a_state_dict(tmp_path) -> None:
    repo = _fake_repo(tmp_path / "MI-GAN")
    evil = _Evil()
    evil.marker = tmp_path / "executed"
    torch.save({"conv.weight": evil}, tmp_path / "bad.pt")
    with pytest.raises(WeightError, match="not a loadable state dict") as err:
        ts.export_gan("migan_256_places2", repo, tmp_path / "bad.pt", out=tmp_path / "x.pt", device="cpu")
    assert "\n" not in str(err.value) and not evil.marker.exists() and not (tmp_path / "x.pt").exists()


def test_export_refuses_unknown_keys_and_foreign_repos(tmp_path) -> None:
    with pytest.raises(WeightError, match="not a MI-GAN / CoModGAN checkpoint"):
        ts.export_gan("lama_big_lama", tmp_path, tmp_path / "x.pt")
    with pytest.raises(WeightError, match="not a clone of"):
        ts.export_gan("migan_256_ffhq", tmp_path, tmp_path / "x.pt")


def test_full_scale_standins_when_allowed_are_labelled(tmp_path, monkeypatch) -> None:
    cfg = _full(tmp_path, monkeypatch)
    cfg = dataclasses.replace(cfg, weights=dataclasses.replace(cfg.weights, allow_standin=True))
    assert weights_kind(cfg, "comodgan", "celebahq512") == "standin"
