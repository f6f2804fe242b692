"""Generated weights (moebius.rehearsal.weights) load through the real full-scale loaders.

Each test writes files into ``tmp_path`` and reads them back through the loader the full-scale run uses
(``load_official``, ``build_inception``, ``build_lpips``, ``build_perceptual_net``, the baseline runners),
then checks what came out against what was written: values recomputed from the seed (or the file read
independently), and a forward pass that stays finite.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch

from moebius.config import Config, WeightsConfig
from moebius.errors import WeightChecksumError
from moebius.rehearsal import weights as gen
from moebius.weights import GENERATED_LEDGER, get_weight, resolve_weight

SEED = 3


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOEBIUS_WEIGHTS_DIR", raising=False)  # the weights root is tmp_path, nothing else


def _cfg(root: Path, **kw) -> Config:
    return dataclasses.replace(Config(scale="full"), weights=WeightsConfig(dir=str(root)), **kw)


def _assert_state_equal(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(loaded) == list(expected)
    for name, value in expected.items():
        assert loaded[name].shape == value.shape, name
        assert torch.equal(loaded[name].detach().cpu(), value), name


# ---------------------------------------------------------------------------------------------
# Ledger: the registry's check still runs on generated files
# ---------------------------------------------------------------------------------------------


def test_ledger_replaces_the_official_digest(tmp_path: Path) -> None:
    # the lpips heads have pinned official sha256s (the torchvision backbones' hash prefixes: the lpips test)
    written = gen.write_weights(tmp_path, ["lpips_alex_head", "lpips_vgg_head"], seed=SEED)
    ledger = json.loads((tmp_path / GENERATED_LEDGER).read_text())
    assert set(ledger["files"]) == {"lpips_alex_head", "lpips_vgg_head"}
    assert resolve_weight("lpips_alex_head", tmp_path) == written["lpips_alex_head"]
    assert resolve_weight("lpips_vgg_head", tmp_path) == written["lpips_vgg_head"]


@pytest.mark.hostile("a generated weight file is changed after its ledger entry was written",
                     "resolve_weight raises WeightChecksumError naming the ledger")
def test_ledger_still_catches_a_changed_file(tmp_path: Path) -> None:
    path = gen.write_weights(tmp_path, ["lpips_alex_head"], seed=SEED)["lpips_alex_head"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(WeightChecksumError, match=GENERATED_LEDGER):
        resolve_weight("lpips_alex_head", tmp_path)


@pytest.mark.hostile("a random file at an official path with no ledger entry",
                     "the official digest check still applies: WeightChecksumError")
def test_without_ledger_the_official_check_applies(tmp_path: Path) -> None:
    gen.write_weights(tmp_path, ["lpips_alex_head"], seed=SEED)
    (tmp_path / GENERATED_LEDGER).unlink()
    with pytest.raises(WeightChecksumError, match="known"):
        resolve_weight("lpips_alex_head", tmp_path)


# ---------------------------------------------------------------------------------------------
# Small formats through the real loaders (default suite)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vae_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDXL VAE and its config, generated once for the tests that read them (84 M parameters)."""
    root = tmp_path_factory.mktemp("vae_weights")
    gen.write_weights(root, ["sdxl_vae_config", "sdxl_vae"], seed=SEED)
    return root


def test_vae_folder_loads_through_load_official(vae_root: Path) -> None:
    from moebius.train.official import load_official

    vae, info = load_official(_cfg(vae_root), "vae", "pretrained")
    assert info["weights_kind"] == "generated" and info["source_file"].endswith("vae/diffusion_pytorch_model.bin")
    assert vae.config.scaling_factor == pytest.approx(0.13025)  # read from the generated config.json
    _assert_state_equal(vae.state_dict(), gen.expected_state(gen.vae_layout(), SEED, "sdxl_vae"))
    with torch.no_grad():
        z = vae.encode(torch.rand(1, 3, 32, 32) * 2 - 1).latent_dist.mean  # (1, 4, 4, 4)
        x = vae.decode(z).sample
    assert z.shape == (1, 4, 4, 4) and torch.isfinite(z).all() and torch.isfinite(x).all()


def test_train_official_records_generated_weights_as_generated(vae_root: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    # `moebius train official --kind vae` calls prepare_official; its run.json is what later records read
    from moebius import weights
    from moebius.train.official import prepare_official

    monkeypatch.setattr(weights, "_ANNOUNCED", set())
    with caplog.at_level(logging.WARNING, logger="moebius.weights"):
        out = prepare_official(_cfg(vae_root), "vae", "pretrained", tmp_path / "vae_run")
    run = json.loads((out / "run.json").read_text())
    assert run["weights_kind"] == "generated" and run["weights"] == "sdxl_vae"
    lines = [r.getMessage() for r in caplog.records if r.name == "moebius.weights"]
    assert sorted(line.split()[1] for line in lines) == ["sdxl_vae", "sdxl_vae_config"]  # each file once
    assert all(str(vae_root / GENERATED_LEDGER) in line for line in lines)  # naming the ledger


def test_inception_file_loads_through_the_fid_extractor(tmp_path: Path) -> None:
    from moebius.eval.metrics import build_inception

    gen.write_weights(tmp_path, ["inception_fid"], seed=SEED)
    model, kind = build_inception(allow_standin=False, weights_dir=tmp_path, device="cpu")
    assert kind == "generated"  # the ledger lists it: never recorded as official
    _assert_state_equal(model.state_dict(), gen.expected_state(gen.inception_layout(), SEED, "inception_fid"))
    with torch.no_grad():
        (features,) = model(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert float(features.std()) > 0


def test_lpips_files_load_through_build_lpips(tmp_path: Path) -> None:
    from moebius.eval.metrics import build_lpips

    gen.write_weights(tmp_path, ["lpips_alexnet_backbone", "lpips_alex_head"], seed=SEED)
    model, kind = build_lpips("alex", allow_standin=False, weights_dir=tmp_path, device="cpu")
    assert kind == "generated"
    backbone = gen.expected_state(gen.torchvision_layout("alex"), SEED, "lpips_alexnet_backbone")
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    expected_convs = [k for k in backbone if k.startswith("features.") and k.endswith(".weight")]
    assert len(convs) == len(expected_convs) == 5
    for conv, key in zip(convs, expected_convs):
        assert torch.equal(conv.weight.detach(), backbone[key])
        assert torch.equal(conv.bias.detach(), backbone[key.replace(".weight", ".bias")])
    heads = gen.expected_state(gen.lpips_head_layout("alex"), SEED, "lpips_alex_head", gen.is_head)
    state = model.state_dict()
    for key, value in heads.items():
        assert torch.equal(state[key], value), key
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        d = model(x, y).flatten()
    assert torch.isfinite(d).all() and (d > 0).all()


def test_elatentlpips_file_loads_through_build_perceptual_net(tmp_path: Path) -> None:
    from moebius.train.elatentlpips import build_perceptual_net

    gen.write_weights(tmp_path, ["elatentlpips_sdxl_vgg16_tuned"], seed=SEED)
    net, kind = build_perceptual_net("elatentlpips", _cfg(tmp_path))
    assert kind == "generated"
    expected = gen.expected_state(gen.elatentlpips_layout(), SEED, "elatentlpips_sdxl_vgg16_tuned", gen.is_head)
    _assert_state_equal(net.state_dict(), expected)
    with torch.no_grad():
        d = net(torch.randn(2, 4, 32, 32), torch.randn(2, 4, 32, 32), normalize=True)
    assert torch.isfinite(d).all() and (d > 0).all()


@pytest.mark.parametrize("name,key,size", [("lama", "lama_big_lama", 32), ("migan", "migan_256_places2", 256)])
def test_torchscript_files_load_through_the_runner(tmp_path: Path, name: str, key: str, size: int) -> None:
    from moebius.eval import baseline_torchscript
    from moebius.eval.baselines import Checkpoint, get_baseline

    path = gen.write_weights(tmp_path, [key], seed=SEED)[key]
    loaded = baseline_torchscript.load(_cfg(tmp_path), get_baseline(name), Checkpoint(key, size), size)
    assert loaded.provenance["file"] == str(path) and loaded.provenance["kind"] == "generated"
    ledger = json.loads((tmp_path / GENERATED_LEDGER).read_text())["files"][key]
    assert loaded.provenance["sha256"] == ledger["sha256"]  # the runner read the file the ledger vouches for
    images = torch.rand(1, 3, size, size) * 2 - 1
    masks = torch.zeros(1, 1, size, size)
    masks[..., size // 4: size // 2, size // 4: size // 2] = 1
    out = loaded.run(images, masks, [0], None)
    assert out.shape == images.shape and torch.isfinite(out).all()
    known = masks.expand_as(images) < 0.5
    assert torch.allclose(out[known], images[known], atol=1 / 127)  # both runners keep the known pixels


def test_migan_512_needs_no_published_md5_when_ledgered(tmp_path: Path) -> None:
    # migan_512_places2 has a published md5 (IOPaint); a generated file is checked against its ledger
    from moebius.eval.baseline_torchscript import _check_md5

    path = gen.write_weights(tmp_path, ["migan_512_places2"], seed=SEED)["migan_512_places2"]
    assert _check_md5("migan_512_places2", path, str(tmp_path)) is None
    (tmp_path / GENERATED_LEDGER).unlink()
    with pytest.raises(WeightChecksumError, match="md5"):
        _check_md5("migan_512_places2", path, str(tmp_path))


def _component_file(folder: Path, component: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (file,) = sorted((folder / component).glob("*.safetensors"))
    return load_file(str(file))


@pytest.mark.filterwarnings("error:.*torch_dtype.*:FutureWarning")  # the full-scale call used the deprecated name
@pytest.mark.parametrize("name,key,component", [
    ("flux_fill", "flux_fill_dev", "transformer"),
    ("sd35_inpaint", "sd35_large_inpainting", "transformer"),
    ("sd15_inpaint", "sd15_inpainting", "unet"),
])
def test_tiny_pipeline_folders_load_through_from_pretrained(tmp_path: Path, name: str, key: str, component: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from moebius.eval import baseline_diffusers
    from moebius.eval.baselines import Checkpoint, get_baseline

    folder = gen.write_weights(tmp_path, [key], seed=SEED)[key]
    cfg = _cfg(tmp_path)
    monkeypatch.setattr(baseline_diffusers, "steps_for", lambda cfg, name: 2)  # the format, not the sampler
    spec, ckpt = get_baseline(name), Checkpoint(key, None)
    pipe, embeds, where = baseline_diffusers._build(cfg, spec, ckpt)
    assert embeds is None and where == {"kind": "generated", "folder": str(folder)}  # the full-scale branch
    written = _component_file(folder, component)
    loaded = getattr(pipe, component).state_dict()
    assert set(written) <= set(loaded)
    for k, v in written.items():
        assert torch.equal(loaded[k].float().cpu(), v.float()), k
    assert pipe.tokenizer is not None and pipe.text_encoder is not None  # the empty prompt is encoded
    run = baseline_diffusers.load(cfg, spec, ckpt, None).run
    images, masks = torch.rand(1, 3, 32, 32) * 2 - 1, torch.zeros(1, 1, 32, 32)
    masks[..., 8:24, 8:24] = 1
    out = run(images, masks, [0], None)
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_unknown_or_ungeneratable_keys_are_named(tmp_path: Path) -> None:
    from moebius.errors import UnknownNameError, WeightError

    with pytest.raises(UnknownNameError, match="moebius_pretrained"):
        gen.write_weights(tmp_path, ["moebius_pretrainde"])
    with pytest.raises(WeightError, match="full-width"):
        gen.write_weights(tmp_path, ["sd15_inpainting"], tiny_pipelines=False)
    assert not (tmp_path / GENERATED_LEDGER).exists()  # nothing half-written


# ---------------------------------------------------------------------------------------------
# Paper-size files (slow): MAT 512, Moebius student, PixelHacker teacher
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mat_safetensors_loads_through_the_runner(tmp_path: Path) -> None:
    from moebius.eval.mat import (
        PAPER,
        MATGenerator,
        deterministic_state,
        load_mat_inpainter,
    )

    gen.write_weights(tmp_path, ["mat_places512"], seed=SEED)
    mat = load_mat_inpainter("full", False, str(tmp_path), "places2")
    assert mat.weights_kind == "generated" and mat.model_size == 512
    _assert_state_equal(mat.model.state_dict(), deterministic_state(MATGenerator(PAPER), SEED))


@pytest.mark.slow
@pytest.mark.parametrize("kind,key", [("student", "moebius_ft_ffhq"), ("teacher", "pixelhacker_pretrained")])
def test_paper_size_denoisers_load_through_load_official(tmp_path: Path, kind: str, key: str) -> None:
    from moebius.models.lcg import lcg_ids
    from moebius.train.official import load_official

    path = gen.write_weights(tmp_path, [key], seed=SEED)[key]
    assert path == tmp_path / key.split("_", 1)[0] / key.split("_", 1)[1] / "diffusion_pytorch_model.bin"
    variant = key.split("_", 1)[1]
    model, info = load_official(_cfg(tmp_path), kind, variant)
    assert info["weights"] == key and info["weights_kind"] == "generated"
    state = model.state_dict()
    layout = gen.denoiser_layout(kind)
    assert list(state) == [name for name, *_ in layout]
    for name, shape, dtype, _ in layout:  # one tensor at a time: the teacher is 3.4 GB
        assert torch.equal(state[name], gen.tensor_values(SEED, key, name, shape, dtype)), name
    with torch.inference_mode():
        out = model.eval()(torch.randn(1, 9, 64, 64), 999, lcg_ids(1, conditional=True))
    assert torch.isfinite(out.sample).all()


@pytest.mark.hostile("an LPIPS head file whose keys carry another prefix (lpips loads heads with strict=False)",
                     "build_lpips raises EvalError naming the file instead of scoring with random heads")
def test_lpips_head_file_with_other_keys_is_refused(tmp_path: Path) -> None:
    import hashlib

    from moebius.errors import EvalError
    from moebius.eval.metrics import build_lpips

    written = gen.write_weights(tmp_path, ["lpips_alexnet_backbone", "lpips_alex_head"], seed=SEED)
    head = written["lpips_alex_head"]
    torch.save({f"module.{k}": v for k, v in torch.load(head, weights_only=True).items()}, head)
    ledger_path = tmp_path / GENERATED_LEDGER
    ledger = json.loads(ledger_path.read_text())  # the file passes its checksum: only its keys are wrong
    ledger["files"]["lpips_alex_head"]["sha256"] = hashlib.sha256(head.read_bytes()).hexdigest()
    ledger_path.write_text(json.dumps(ledger))
    with pytest.raises(EvalError, match="LPIPS heads"):
        build_lpips("alex", allow_standin=False, weights_dir=tmp_path, device="cpu")


@pytest.mark.hostile("generating weights into a folder that already holds a registered file the ledger does not list",
                     "WeightError naming the file; nothing is written and the real file is untouched")
def test_generation_refuses_a_folder_with_real_weights(tmp_path: Path) -> None:
    real = tmp_path / get_weight("lpips_alex_head").path
    real.parent.mkdir(parents=True)
    real.write_bytes(b"someone's real weights")
    with pytest.raises(gen.WeightError, match=r"not generated \(lpips/v0.1/alex.pth\)"):
        gen.write_weights(tmp_path, ["lpips_vgg_head"], seed=SEED)
    assert real.read_bytes() == b"someone's real weights"
    assert not (tmp_path / GENERATED_LEDGER).exists()


def test_a_resumed_generation_keeps_the_files_already_ledgered(tmp_path: Path) -> None:
    first = gen.write_weights(tmp_path, ["lpips_alex_head"], seed=SEED)["lpips_alex_head"]
    stamp = first.stat().st_mtime_ns
    both = gen.write_weights(tmp_path, ["lpips_alex_head", "lpips_vgg_head"], seed=SEED)
    assert first.stat().st_mtime_ns == stamp  # not rewritten
    assert set(json.loads((tmp_path / GENERATED_LEDGER).read_text())["files"]) == set(both)
    # another seed is another file
    gen.write_weights(tmp_path, ["lpips_alex_head"], seed=SEED + 1)
    assert json.loads((tmp_path / GENERATED_LEDGER).read_text())["files"]["lpips_alex_head"]["seed"] == SEED + 1
    resolve_weight("lpips_alex_head", tmp_path)  # the ledger's sha256 is the new file's
