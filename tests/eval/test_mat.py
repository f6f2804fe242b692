"""MAT (moebius.eval.mat, moebius.eval.mat_convert): the official module tree and outputs, the
converter's isolated subprocess, the loader's refusal of code-carrying files, the stand-in through
the harness. Reference data: tests/eval/manifests/ (make_mat_reference.py, run on the official code)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import pickle
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from moebius.config import BenchmarkConfig, load_config
from moebius.diffusion.seeding import image_generators
from moebius.errors import EvalError, WeightError
from moebius.eval.baseline_mat import target_of
from moebius.eval.baselines import (
    benchmarks_for,
    can_run,
    checkpoint_for,
    get_baseline,
    load_baseline,
    work_size,
)
from moebius.eval.mat import (
    PAPER,
    STANDIN,
    WEIGHT_KEYS,
    MATConfig,
    MATGenerator,
    deterministic_state,
    draw_inputs,
    load_mat_inpainter,
)
from moebius.eval.mat_convert import convert_mat_pickle, load_mat_state, mat_from_state

MANIFESTS = Path(__file__).parent / "manifests"


def _reference_tool():
    spec = importlib.util.spec_from_file_location("make_mat_reference", MANIFESTS / "make_mat_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Against the official implementation
# ---------------------------------------------------------------------------------------------


def test_state_dict_is_the_official_g_ema() -> None:
    table = pd.read_csv(MANIFESTS / "mat_state_dict.tsv", sep="\t", dtype=str, keep_default_na=False)
    official = set(map(tuple, table[["key", "shape", "dtype", "kind"]].values))
    with torch.device("meta"):  # shapes only
        model = MATGenerator(PAPER)
    params = dict(model.named_parameters())
    ours = {(k, "x".join(map(str, v.shape)) or "scalar", str(v.dtype).removeprefix("torch."),
             "param" if k in params else "buffer") for k, v in model.state_dict().items()}
    assert len(official) == 487
    assert ours == official


@pytest.mark.parametrize("resolution", [128, pytest.param(512, marks=pytest.mark.slow)])
def test_outputs_match_the_official_code(resolution: int) -> None:
    """Same weights (deterministic_state), same inputs and Bernoulli draws → the official pixels."""
    ref = json.loads((MANIFESTS / f"mat_reference_{resolution}.json").read_text())
    model = MATGenerator(MATConfig(resolution=resolution)).eval()
    model.load_state_dict(deterministic_state(model, ref["weights_seed"]), strict=True)
    images, known, z, keep1, keep2 = _reference_tool().reference_inputs(
        resolution, model.cfg.z_dim, model.keep_shapes(), ref["input_seed"])
    with torch.no_grad():
        out, stage1 = model(images, known, z, keep1, keep2, noise_mode="const", return_stage1=True)
    pos = ref["positions"]
    scale = max(1.0, max(abs(v) for v in ref["output"] + ref["stage1"]))
    tol = 2e-4 * scale  # measured here: 1.8e-6 (128 px), 3e-5 at 512 px where outputs reach 30
    np.testing.assert_allclose([out[0, c, y, x].item() for c, y, x in pos], ref["output"], rtol=0, atol=tol)
    np.testing.assert_allclose([stage1[0, c, y, x].item() for c, y, x in pos], ref["stage1"], rtol=0, atol=tol)
    hole = (known == 0).expand_as(out)
    assert out[hole].mean().item() == pytest.approx(ref["hole_mean"], abs=tol)
    assert out[hole].std().item() == pytest.approx(ref["hole_std"], abs=tol)
    assert torch.equal(out[~hole], images[~hole])  # the known pixels are the input's own


# ---------------------------------------------------------------------------------------------
# The converter (isolated subprocess) and the loader (safetensors only)
# ---------------------------------------------------------------------------------------------

# Stands for MAT's code: a module that the pickle references by name, found only in --mat-repo, whose
# unpickling runs code: it writes a file into the folder it runs in, and reports that folder.
_FAKE_MAT = '''
import os
import torch


class Holder(torch.nn.Module):
    def __init__(self, state):
        super().__init__()
        for key, value in state.items():
            *path, leaf = key.split(".")
            module = self
            for name in path:
                if not hasattr(module, name):
                    module.add_module(name, torch.nn.Module())
                module = getattr(module, name)
            module.register_buffer(leaf, value.clone())

    def __setstate__(self, state):
        super().__setstate__(state)
        with open("unpickled-here.txt", "w") as fh:
            fh.write(os.getcwd())
        with open(REPORT, "w") as fh:
            fh.write(os.getcwd())
'''


@pytest.fixture
def fake_mat_repo(tmp_path: Path):
    """A folder laid out like a MAT clone whose module `fakemat` holds G_ema's class."""
    repo = tmp_path / "MAT"
    (repo / "torch_utils").mkdir(parents=True)
    (repo / "torch_utils" / "persistence.py").write_text("")
    (repo / "fakemat.py").write_text(f"REPORT = {str(tmp_path / 'unpickled-in.txt')!r}\n" + _FAKE_MAT)
    sys.path.insert(0, str(repo))
    try:
        import fakemat

        yield repo, fakemat
    finally:
        sys.path.remove(str(repo))
        sys.modules.pop("fakemat", None)


def _standin_state() -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        model = MATGenerator(STANDIN)
    return deterministic_state(model, 5)


def test_convert_runs_the_pickle_elsewhere_and_writes_loadable_safetensors(tmp_path, fake_mat_repo, monkeypatch):
    repo, fakemat = fake_mat_repo
    state = _standin_state()
    pkl = tmp_path / "G.pkl"
    with open(pkl, "wb") as fh:
        pickle.dump({"G": None, "D": None, "G_ema": fakemat.Holder(state)}, fh)
    here = tmp_path / "harness-cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    out = tmp_path / "weights" / "mat" / "G.safetensors"

    summary = convert_mat_pickle(pkl, out, repo)

    # The pickle's code ran, in the child's own temporary folder (gone now), not in ours.
    ran_in = Path((tmp_path / "unpickled-in.txt").read_text())
    assert ran_in.name == "cwd" and ran_in.parent.name.startswith("moebius-mat-convert-") and not ran_in.exists()
    assert list(here.iterdir()) == []
    loaded, sha256 = load_mat_state(out)
    assert sha256 == summary["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert summary["config"] == asdict(STANDIN) and summary["tensors"] == len(state)
    model = mat_from_state(loaded, str(out))
    assert torch.equal(model.synthesis.to_square.weight, state["synthesis.to_square.weight"])


def _payload(marker: Path):
    class Payload:
        def __reduce__(self):  # unpickling calls open(marker, "w"): the file appears
            return (open, (str(marker), "w"))

    return Payload()


@pytest.mark.hostile("a pickle / torch.save file (also renamed .safetensors) whose object runs code when loaded, "
                     "given as MAT weights", "refused from its first bytes with one WeightError line; the code never runs")
def test_loader_refuses_code_carrying_files(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    pkl, pt, disguised = tmp_path / "evil.pkl", tmp_path / "evil.pt", tmp_path / "evil.safetensors"
    pkl.write_bytes(pickle.dumps(_payload(marker)))
    torch.save({"G_ema": _payload(marker)}, pt)
    disguised.write_bytes(pkl.read_bytes())
    # The payload is real: plain unpickling (in another process) runs it.
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))", str(pkl)],
                   check=True, capture_output=True, timeout=60)
    assert marker.exists()
    marker.unlink()

    for path, what in ((pkl, "pickle"), (pt, "zip archive"), (disguised, "pickle")):
        with pytest.raises(WeightError, match=f"{what}.*refusing to load it") as err:
            load_mat_state(path)
        assert "\n" not in str(err.value) and "convert-mat" in str(err.value)
        assert not marker.exists()


@pytest.mark.hostile("the MAT weights file of the weights directory replaced by a code-carrying pickle (full scale)",
                     "load_baseline('mat') fails with one EvalError line; the pickle's code never runs")
def test_harness_refuses_a_pickle_in_the_weights_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MOEBIUS_WEIGHTS_DIR", raising=False)
    marker = tmp_path / "code-ran"
    weights = tmp_path / "weights"
    (weights / "mat").mkdir(parents=True)
    (weights / "mat" / "Places_512.safetensors").write_bytes(pickle.dumps(_payload(marker)))
    cfg = load_config("config/smoke.yaml")
    cfg = dataclasses.replace(cfg, scale="full", weights=dataclasses.replace(cfg.weights, dir=str(weights),
                                                                             allow_standin=False))
    with pytest.raises(EvalError, match="mat: .*Places_512.safetensors is a Python pickle.*refusing") as err:
        load_baseline(cfg, "mat", "places2_test")
    assert "\n" not in str(err.value) and not marker.exists()
    # And a missing file says where to get it and how to convert it.
    with pytest.raises(EvalError, match="missing weight mat_celebahq512.*CelebA-HQ_512.pkl.*convert-mat"):
        load_baseline(cfg, "mat", "deepfakeface")  # DeepFakeFace: the CelebA-HQ model


@pytest.mark.hostile("weights of another network (a key missing, a shape changed) given as MAT",
                     "one WeightError line counting missing / unexpected / mis-shaped keys, naming the first")
def test_state_of_another_network_is_refused() -> None:
    state = _standin_state()
    broken = dict(state)
    del broken["synthesis.to_square.bias"]
    broken["mapping.fc3.weight"] = torch.zeros(3, 3)
    broken["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightError, match=r"1 missing \(first: synthesis.to_square.bias\); 1 unexpected "
                                          r"\(first: extra.weight\); 1 with another shape \(first: mapping.fc3.weight\)"):
        mat_from_state(broken, "other.safetensors")
    with pytest.raises(WeightError, match="not a MAT generator state dict"):
        mat_from_state({"conv.weight": torch.zeros(1)}, "other.safetensors")


@pytest.mark.hostile("convert-mat with a folder that is not a MAT clone, and with a pickle without G_ema",
                     "one line each (the second from the isolated child; exit 2 from the CLI); no output file")
def test_convert_mat_errors_are_one_line(tmp_path, run_cli, fake_mat_repo) -> None:
    repo, _ = fake_mat_repo
    pkl = tmp_path / "no_g.pkl"
    pkl.write_bytes(pickle.dumps({"G": None, "D": None}))
    out = tmp_path / "out.safetensors"
    with pytest.raises(WeightError, match="is not a clone of github.com/fenglinglwb/MAT"):
        convert_mat_pickle(pkl, out, tmp_path)
    proc = run_cli("weights", "convert-mat", str(pkl), "--out", str(out), "--mat-repo", str(repo))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "holds no G_ema network (found: ['D', 'G'])" in proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# In the harness: the stand-in, mask polarity, seeding, the registry and inpaint_benchmark
# ---------------------------------------------------------------------------------------------


def test_inpainter_keeps_known_pixels_and_is_seeded_per_image() -> None:
    mat = load_mat_inpainter("smoke", True, None, "celebahq")
    assert mat.weights_kind == "standin" and mat.model_size == STANDIN.resolution == 128
    assert mat.weights_record["config"] == asdict(STANDIN) and len(mat.weights_record["sha256"]) == 64
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(1, 3, 128, 128, generator=g) * 2 - 1).repeat(2, 1, 1, 1)  # one image, two seeds
    holes = torch.zeros(2, 1, 128, 128)  # harness convention: 1 = hole
    holes[:, :, 10:75, 25:105] = 1
    out = mat(images, holes, [11, 12], None)
    hole = holes.expand_as(images) > 0.5
    assert torch.equal(out[~hole], images[~hole])  # MAT's own compositing: the polarity was flipped right
    assert (out[hole] - images[hole]).abs().mean() > 0.05  # the hole was painted
    assert (out[0] - out[1]).abs().max() > 1e-3  # z and the style masks come from the seed
    # Each image draws from its own generator only: its draws do not depend on its batch.
    pair = draw_inputs(mat.model, image_generators([11, 12]))
    alone = draw_inputs(mat.model, image_generators([12]))
    assert all(torch.equal(p[1:], a) for p, a in zip(pair, alone))


def _paper_mat_cells() -> set[str]:
    cells = set()
    for f in ("table3_natural.csv", "table4_portrait.csv"):
        table = pd.read_csv(f"results/reference/{f}")
        cells |= set(table.loc[table["method"] == "MAT", "benchmark"])
    ood = pd.read_csv("results/reference/table7_ood.csv").set_index("method")
    return cells | {b for b in ("lvis", "deepfakeface") if pd.notna(ood.loc["MAT", f"{b}_fid"])}


def test_registry_entry_runs() -> None:
    cfg = load_config("config/smoke.yaml")
    spec = get_baseline("mat")
    assert spec.family == "mat" and spec.display == "MAT" and spec.kind == "non-diffusion"
    assert can_run("mat", cfg, "places2_test") == (True, "")
    no_standin = dataclasses.replace(cfg, weights=dataclasses.replace(cfg.weights, allow_standin=False))
    assert can_run("mat", no_standin, "places2_test")[0] is False
    with pytest.raises(EvalError, match="depends on the benchmark"):  # one checkpoint per domain
        load_baseline(cfg, "mat")
    # Sampled on every benchmark where the paper has a MAT cell, and nowhere else.
    full = load_config("config/full.yaml")
    assert set(spec.benchmarks) == _paper_mat_cells()
    assert benchmarks_for(full, "mat", sorted(full.benchmarks)) == sorted(spec.benchmarks)
    assert "mat" in full.eval.models and "mat" in cfg.eval.models


@pytest.mark.parametrize("benchmark, key", [
    ("places2_test", "mat_places512"), ("places2_256", "mat_places512"), ("lvis", "mat_places512"),
    ("celebahq512", "mat_celebahq512"), ("deepfakeface", "mat_celebahq512"), ("ffhq256", "mat_ffhq512"),
])
def test_each_benchmark_gets_the_model_of_its_domain_at_512(benchmark: str, key: str) -> None:
    full = load_config("config/full.yaml")
    checkpoint = checkpoint_for(full, "mat", benchmark)
    assert checkpoint.key == key and WEIGHT_KEYS[target_of(checkpoint)] == key
    assert work_size(full, "mat", benchmark) == 512  # the 256-px benchmarks too: resized there and back


def test_a_checkpoint_of_another_method_is_not_a_mat_target() -> None:
    with pytest.raises(EvalError, match="'migan_256_ffhq' is not a MAT checkpoint"):
        target_of(checkpoint_for(load_config("config/full.yaml"), "migan", "ffhq256"))


def _benchmark(root: Path, size: int, ids: list[str]) -> tuple[Path, Path]:
    images_dir, masks_dir = root / "images", root / "masks"
    images_dir.mkdir()
    masks_dir.mkdir()
    rng = np.random.default_rng(0)
    ratios = []
    for k, i in enumerate(ids):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(images_dir / f"{i}.png")
        hole = np.zeros((size, size), np.uint8)
        hole[k * 4: k * 4 + size // 2, size // 4: size // 2 + k] = 255
        Image.fromarray(hole).save(masks_dir / f"{i}.png")
        ratios.append(float((hole == 255).mean()))
    sha = [hashlib.sha256((images_dir / f"{i}.png").read_bytes()).hexdigest() for i in ids]
    pd.DataFrame({"id": ids, "source": "test", "sha256": sha, "width": size, "height": size}).to_csv(
        images_dir / "manifest.csv", index=False)
    pd.DataFrame({"id": ids, "polarity": "255_hole", "hole_ratio": ratios}).to_csv(masks_dir / "manifest.csv",
                                                                                  index=False)
    return images_dir, masks_dir


def test_standin_through_inpaint_benchmark(tmp_path) -> None:
    from moebius.eval.inpaint import inpaint_benchmark

    ids = ["x1", "x2"]
    images_dir, masks_dir = _benchmark(tmp_path, 32, ids)
    cfg = load_config("config/smoke.yaml")
    # A "512" protocol at 32 px: the checkpoint's 512 shrinks to 32 (smoke scale), below MAT's smallest
    # resolution, so the stand-in resizes to its 128 and back itself, and says so.
    bench = BenchmarkConfig(dataset="x", split="test", n_images=2, size=32, preprocess="mat_crop",
                            mask_protocol="places2_test", domain="natural", finetune="places2")
    cfg = dataclasses.replace(cfg, benchmarks={"tiny": bench})
    meta = inpaint_benchmark(cfg, "mat", None, None, "tiny", images_dir, masks_dir, tmp_path / "out")
    assert meta["weights_kind"] == "standin" and meta["display"] == "MAT"
    assert meta["resized"] is None and meta["model_size"] == 32 and meta["sampler"]["checkpoint"] == "mat_places512"
    assert meta["weights"]["standin_resized"] == {"from": 32, "to": 128, "images": "bicubic", "masks": "nearest"}
    assert meta["weights"]["key"] == "mat_places512" and len(meta["weights"]["sha256"]) == 64
    written = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert written["weights"]["sha256"] == meta["weights"]["sha256"]
    for i in ids:
        src = np.asarray(Image.open(images_dir / f"{i}.png")).astype(int)
        out = np.asarray(Image.open(tmp_path / "out" / f"{i}.png")).astype(int)
        hole = np.asarray(Image.open(masks_dir / f"{i}.png")) == 255
        assert np.array_equal(out[~hole], src[~hole]) and np.abs(out[hole] - src[hole]).mean() > 5
