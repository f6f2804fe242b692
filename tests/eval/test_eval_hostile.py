"""Hostile inputs to `moebius sample` / `moebius evaluate`: one error line, nothing written outside --out.

Each test runs the real entry point (``moebius.cli.main``: parsing, the package call, and the
error-to-one-line handling); the escape test also runs it as a subprocess. A traceback fails the
test (the exception propagates), so "one line" here means: exit status 2 and exactly one
``moebius: error:`` line on stderr.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image


ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "smoke.yaml"
BENCH, SIZE = "ffhq256", 32  # a smoke benchmark of 32-px images
IDS = ["a1", "b2"]


# ---------------------------------------------------------------------------------------------
# A tiny benchmark folder, its mask set, and the CLI
# ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hole(k: int) -> np.ndarray:
    hole = np.zeros((SIZE, SIZE), bool)
    hole[4 + 3 * k : 14 + 3 * k, 6 : 16 + k] = True  # a small hole (ratio < 0.2), one per id
    return hole


def _write_image_manifest(images: Path, ids: list[str]) -> None:
    # By hand, not write_manifest: hostile ids must reach the manifest as they are.
    pd.DataFrame({"id": ids, "source": "test", "sha256": [_sha256(images / f"{i}.png") for i in ids],
                  "width": SIZE, "height": SIZE}).to_csv(images / "manifest.csv", index=False)


def _write_mask_manifest(masks: Path, ids: list[str], ratios: list[float]) -> None:
    pd.DataFrame({"id": ids, "seed": 0, "hole_ratio": ratios, "protocol": "test", "version": 1,
                  "polarity": "255_hole", "size": SIZE}).to_csv(masks / "manifest.csv", index=False)


def _benchmark(root: Path, ids: list[str] = IDS) -> tuple[Path, Path]:
    """``root/bench/images`` and ``root/maskset/masks`` for ``ids`` (files at ``<dir>/<id>.png``, literally)."""
    images, masks = root / "bench" / "images", root / "maskset" / "masks"
    rng = np.random.default_rng(0)
    ratios = []
    for k, image_id in enumerate(ids):
        image_path, mask_path = images / f"{image_id}.png", masks / f"{image_id}.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(image_path)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(_hole(k), 255, 0).astype(np.uint8)).save(mask_path)
        ratios.append(float(_hole(k).mean()))
    _write_image_manifest(images, ids)  # after every write: an absolute id puts image and mask in one file
    _write_mask_manifest(masks, ids, ratios)
    return images, masks


def _damage(path: Path, how: str) -> Path:
    """Cut ``path`` to its first half (``truncated``) or replace it by text (``not_an_image``)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"just some text\n")
    return path


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Every file under ``root`` outside ``skip``, with its sha256."""
    return {str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and skip not in p.parents}


@pytest.fixture
def moebius(monkeypatch, tmp_path, moebius_cli):
    """``moebius(*args) -> (exit status, stderr)`` through ``moebius.cli.main``, run from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)  # the smoke config's relative result paths land in tmp_path
    return lambda *args: moebius_cli("--config", CONFIG, *args)


def _one_line(code: int, err: str) -> str:
    """The single error line of a failed command (exit 2, no traceback)."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("moebius: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _sample(moebius, images: Path, masks: Path, out: Path) -> tuple[int, str]:
    return moebius("sample", "--model", "telea", "--benchmark", BENCH, "--images", str(images),
                   "--masks", str(masks), "--out", str(out))


def _refused(moebius, images: Path, masks: Path, out: Path) -> str:
    """The one error line of ``moebius sample`` into ``out``, after checking that nothing was sampled there."""
    line = _one_line(*_sample(moebius, images, masks, out))
    assert not list(out.rglob("*.png"))
    return line


def test_clean_benchmark_samples(tmp_path, moebius) -> None:
    """The fixture itself is sound: without a hostile change, sampling succeeds (the tests below fail for
    the reason they name)."""
    images, masks = _benchmark(tmp_path)
    code, err = _sample(moebius, images, masks, tmp_path / "run" / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "run" / "out").glob("*.png")) == ["a1.png", "b2.png"]


# ---------------------------------------------------------------------------------------------
# Ids that are paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile(
    "`moebius sample` on a benchmark manifest whose id is `../escape`, `a/b` or an absolute path",
    "one line naming the id; no file written or changed outside --out",
)
@pytest.mark.parametrize("kind", ["dotdot", "subdir", "absolute"])
def test_sample_refuses_an_id_that_is_a_path(tmp_path, moebius, kind) -> None:
    bad = {"dotdot": "../escape", "subdir": "a/b", "absolute": str(tmp_path / "abs" / "escape")}[kind]
    images, masks = _benchmark(tmp_path, ["a1", bad])
    out = tmp_path / "run" / "out"
    before = _snapshot(tmp_path, skip=out)
    line = _refused(moebius, images, masks, out)
    assert repr(bad) in line and "invalid image id" in line
    assert _snapshot(tmp_path, skip=out) == before  # e.g. no run/escape.png, the absolute file untouched


@pytest.mark.hostile(
    "the installed `moebius sample` (a subprocess) on a benchmark manifest with the id `../escape`",
    "exit 2, one line, no traceback; nothing written beside --out",
)
def test_sample_escape_id_through_the_installed_command(tmp_path, run_cli) -> None:
    images, masks = _benchmark(tmp_path, ["a1", "../escape"])
    out = tmp_path / "run" / "out"
    result = run_cli("--config", str(CONFIG), "sample", "--model", "telea", "--benchmark", BENCH,
                     "--images", str(images), "--masks", str(masks), "--out", str(out), cwd=tmp_path)
    line = _one_line(result.returncode, result.stderr)
    assert "'../escape'" in line
    assert not (tmp_path / "run" / "escape.png").exists() and not list(out.rglob("*.png"))


@pytest.mark.hostile(
    "a mask-set manifest listing an id `../escape` (the benchmark's own ids are fine)",
    "one line naming the mask manifest and the id; nothing sampled",
)
def test_sample_refuses_a_mask_manifest_id_that_is_a_path(tmp_path, moebius) -> None:
    images, masks = _benchmark(tmp_path)
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(masks.parent / "escape.png")
    _write_mask_manifest(masks, [*IDS, "../escape"], [float(_hole(0).mean()), float(_hole(1).mean()), 0.0])
    out = tmp_path / "run" / "out"
    line = _refused(moebius, images, masks, out)
    assert "'../escape'" in line and str(masks / "manifest.csv") in line


# ---------------------------------------------------------------------------------------------
# Benchmark images: replaced, truncated, not images
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile(
    "`moebius sample` on a benchmark whose `a1.png` was replaced by another image after its manifest was written",
    "one line (checksum) naming `a1.png`; no output folder made",
)
def test_sample_refuses_a_replaced_benchmark_image(tmp_path, moebius) -> None:
    images, masks = _benchmark(tmp_path)
    Image.fromarray(np.full((SIZE, SIZE, 3), 7, np.uint8)).save(images / "a1.png")  # valid PNG, other pixels
    out = tmp_path / "run" / "out"
    line = _one_line(*_sample(moebius, images, masks, out))
    assert "a1.png" in line and "sha256" in line
    assert not out.exists()


@pytest.mark.hostile(
    "`moebius sample` with a benchmark image or a mask PNG cut short (OpenCV decodes a cut mask silently as "
    "half blank) or not an image at all; the image manifest matches the damaged bytes",
    "one line naming the file (EvalError), no traceback; a damaged mask is found before anything is sampled",
)
@pytest.mark.parametrize("damage", ["truncated", "not_an_image"])
@pytest.mark.parametrize("which", ["image", "mask"])
def test_sample_damaged_image_or_mask_is_one_line(tmp_path, moebius, which, damage) -> None:
    images, masks = _benchmark(tmp_path)
    path = _damage((images if which == "image" else masks) / "b2.png", damage)
    if which == "image":
        _write_image_manifest(images, IDS)  # the checksum agrees: only decoding can find the damage
    out = tmp_path / "out"
    line = _one_line(*_sample(moebius, images, masks, out))
    assert str(path) in line
    if which == "image":
        assert "not a readable image" in line
    else:
        assert "not a readable PNG" in line and not list(out.rglob("*.png"))


# ---------------------------------------------------------------------------------------------
# Masks: damaged files, inverted polarity
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile(
    "`moebius sample` with a mask saved inverted (255 = known) under a `255_hole` manifest",
    "one line naming the file, the pixels' hole ratio and the manifest's, and the inversion",
)
def test_sample_refuses_an_inverted_mask(tmp_path, moebius) -> None:
    images, masks = _benchmark(tmp_path)
    hole = _hole(0)
    Image.fromarray(np.where(hole, 0, 255).astype(np.uint8)).save(masks / "a1.png")
    line = _refused(moebius, images, masks, tmp_path / "out")
    ratio = float(hole.mean())
    assert str(masks / "a1.png") in line and "inverted" in line
    assert f"{1 - ratio:.4f}" in line and f"{ratio:.4f}" in line  # the pixels' ratio, the manifest's


# ---------------------------------------------------------------------------------------------
# The output folder
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile(
    "`moebius sample --out` naming an existing file, or a folder whose `.settings.json` is not JSON",
    "one line naming the path; the file is left as it was",
)
@pytest.mark.parametrize("case", ["out_is_a_file", "damaged_settings"])
def test_sample_bad_output_folder_is_one_line(tmp_path, moebius, case) -> None:
    images, masks = _benchmark(tmp_path)
    out = tmp_path / "out"
    if case == "out_is_a_file":
        out.write_text("a file\n")
        victim = out
    else:
        out.mkdir()
        victim = out / ".settings.json"
        victim.write_text("{ half written")
    before = victim.read_bytes()
    line = _one_line(*_sample(moebius, images, masks, out))
    assert str(victim if case == "damaged_settings" else out) in line
    assert victim.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# moebius evaluate
# ---------------------------------------------------------------------------------------------


def _samples(tmp_path: Path, images: Path, name: str = "samples") -> Path:
    """A sample folder of ``images`` (copies) with its meta.json, as `moebius sample` leaves it."""
    samples = tmp_path / name
    samples.mkdir()
    for i in IDS:
        shutil.copy(images / f"{i}.png", samples / f"{i}.png")
    (samples / "meta.json").write_text(json.dumps({"weights_kind": "trained"}))
    return samples


def _evaluate(moebius, samples: Path, images: Path, masks: Path, out: Path, experiment: str = "main"):
    return moebius("evaluate", "--samples", str(samples), "--images", str(images), "--masks", str(masks),
                   "--model", "telea", "--benchmark", BENCH, "--experiment", experiment, "--out", str(out))


@pytest.mark.hostile(
    "`moebius evaluate` with a sample that is not an image, a mask manifest whose hole_ratio is text, "
    "a meta.json that is a list, or a replaced ground-truth image",
    "one line naming the file; no records written",
)
@pytest.mark.parametrize("case", ["sample_not_an_image", "hole_ratio_text", "meta_is_a_list", "truth_replaced"])
def test_evaluate_bad_input_is_one_line(tmp_path, moebius, case) -> None:
    images, masks = _benchmark(tmp_path)
    samples = _samples(tmp_path, images)
    if case == "sample_not_an_image":
        (samples / "a1.png").write_bytes(b"just some text\n")
        named = samples / "a1.png"
    elif case == "hole_ratio_text":
        manifest = pd.read_csv(masks / "manifest.csv", dtype=str)
        manifest.loc[1, "hole_ratio"] = "about a third"
        manifest.to_csv(masks / "manifest.csv", index=False)
        named = masks / "manifest.csv"
    elif case == "meta_is_a_list":
        (samples / "meta.json").write_text("[]")
        named = samples / "meta.json"
    else:
        Image.fromarray(np.full((SIZE, SIZE, 3), 7, np.uint8)).save(images / "b2.png")
        named = images / "b2.png"
    out = tmp_path / "records.json"
    line = _one_line(*_evaluate(moebius, samples, images, masks, out))
    assert str(named) in line
    assert not out.exists()


@pytest.mark.hostile(
    "`moebius evaluate --experiment cfg_sweep` whose sweep.json is missing, is not JSON, or names "
    "the folder `../elsewhere` (a valid sample folder outside the sweep)",
    "one line naming sweep.json; nothing outside the sweep folder is scored",
)
@pytest.mark.parametrize("case", ["missing", "not_json", "folder_outside"])
def test_evaluate_bad_sweep_is_one_line(tmp_path, moebius, case) -> None:
    images, masks = _benchmark(tmp_path)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    _samples(tmp_path, images, name="elsewhere")  # would score without error if the sweep could reach it
    if case == "not_json":
        (sweep / "sweep.json").write_text("{'guidance': [2.0]")
    elif case == "folder_outside":
        (sweep / "sweep.json").write_text(json.dumps({"guidance": [2.0], "folders": ["../elsewhere"]}))
    out = tmp_path / "records.json"
    line = _one_line(*_evaluate(moebius, sweep, images, masks, out, experiment="cfg_sweep"))
    assert str(sweep / "sweep.json") in line
    assert not out.exists()
