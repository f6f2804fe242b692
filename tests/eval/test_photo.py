"""`moebius inpaint`: a photo of any size, a mask or a box, the benchmarks' models and paste-back.

The models are real: a smoke-preset VAE and student trained for one step each here (the training
functions of ``moebius.train``, as `moebius train` runs them), then the same weights saved as the
official files are (plain ``torch.save`` state dicts under the weights dir) for ``--weights official``.
The photo is scikit-image's astronaut, scaled to a non-square size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from moebius.config import config_from_dict
from moebius.data.checksums import file_sha256
from moebius.data.manifest import ManifestRow, write_manifest
from moebius.eval.photo import plan_fit
from moebius.weights import ENV_VAR, get_weight

W, H = 90, 70  # the photo: not square, not the model's 64 px
BOX = (30, 20, 25, 30)  # x, y, w, h


def _train(steps: int = 1) -> dict:
    return {"steps": steps, "batch_size": 2, "global_batch": 2, "lr": 1e-3, "lr_milestones": [], "optimizer": "adamw",
            "precision": "fp32", "checkpoint_every": steps, "log_every": 1, "datasets": ["smoke_natural"],
            "num_workers": 0, "weight_decay": 0.0}


def _cfg_dict(data: Path) -> dict:
    """The smoke preset (64-px student, factor-4 VAE) with one-step runs on two images."""
    return {
        "scale": "smoke", "seed": 3, "paths": {"data": str(data)},
        "data": {"source": "smoke", "datasets": ["smoke_natural"]},
        "model": {"preset": "smoke", "vae_source": "train", "teacher_source": "train", "student_source": "train"},
        "masks": {"train_protocols": ["mat_large_512"]},
        "benchmarks": {"toy": {"dataset": "smoke_natural", "split": "test", "n_images": 2, "size": 64,
                               "preprocess": "mat_crop", "mask_protocol": "mat_large_512", "domain": "natural",
                               "finetune": "places2"}},
        "vae_train": _train(), "teacher_train": _train(), "distill": {"train": _train(), "perceptual": "standin"},
        "ablation": {"benchmark": "toy"}, "eval": {"cfg_sweep": {"toy": [1.0]}},
        "finetune": {"train": _train(), "targets": {"places2": {"datasets": ["smoke_natural"], "steps": 1,
                                                                 "global_batch": 2}}},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A VAE run and a student run (real smoke architectures, one step each), the config file, and a
    weights dir holding the same weights in the official files' layout."""
    from moebius.train import distill, load_run, load_vae, train_vae

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # speed only: these tiny convolutions lose time to threads on a busy machine
    root = tmp_path_factory.mktemp("photo_runs")
    folder = root / "data" / "datasets" / "smoke_natural" / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        path = folder / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        rows.append(ManifestRow(f"{i:04d}", "synthetic", file_sha256(path), 16, 16))
    write_manifest(folder, rows)
    d = _cfg_dict(root / "data")
    cfg = config_from_dict(d)
    vae = train_vae(cfg, root / "vae")
    student = distill(cfg, "student", root / "no-teacher", vae, root / "student", kd=False)
    config = root / "photo.yaml"
    config.write_text(yaml.safe_dump(d), encoding="utf-8")

    weights = root / "weights"  # the official layout: moebius.weights paths, plain state dicts
    for key, module in (("moebius_ft_places2", load_run(student)[0]), ("sdxl_vae", load_vae(vae))):
        target = weights / get_weight(key).path
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(module.state_dict(), target)
    (weights / get_weight("sdxl_vae_config").path).write_text((vae / "config.json").read_text())
    yield {"vae": vae, "student": student, "config": config, "weights": weights}
    torch.set_num_threads(threads)


@pytest.fixture
def photo(tmp_path) -> tuple[Path, np.ndarray]:
    from skimage import data

    pixels = np.asarray(Image.fromarray(data.astronaut()).resize((W, H), Image.BICUBIC))
    path = tmp_path / "astronaut.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def _box_hole() -> np.ndarray:
    x, y, w, h = BOX
    hole = np.zeros((H, W), bool)
    hole[y : y + h, x : x + w] = True
    return hole


def _write_mask(path: Path, white: np.ndarray, size: tuple[int, int] | None = None) -> Path:
    im = Image.fromarray(np.where(white, 255, 0).astype(np.uint8))
    (im.resize(size, Image.NEAREST) if size else im).save(path)
    return path


@pytest.fixture
def moebius(monkeypatch, tmp_path, runs, moebius_main):
    """``moebius(*args) -> (exit status, stdout, stderr)`` through ``moebius.cli.main`` with the test config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-weights"))  # official files: none, unless a test says so

    return lambda *args: moebius_main("--config", runs["config"], *args)


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _check_output(out: Path, pixels: np.ndarray, hole: np.ndarray) -> dict:
    result = _read(out)
    assert result.shape == (H, W, 3)  # the input's size, whatever the model's
    assert np.array_equal(result[~hole], pixels[~hole])  # known pixels: the photo's own, exactly
    assert np.abs(result[hole] - pixels[hole]).mean() > 5  # the hole was repainted
    return json.loads(Path(f"{out}.json").read_text())


# ---------------------------------------------------------------------------------------------
# The photo through the command
# ---------------------------------------------------------------------------------------------


def test_inpaint_a_photo_with_a_mask_from_a_run_folder(tmp_path, moebius, runs, photo) -> None:
    image, pixels = photo
    mask = _write_mask(tmp_path / "mask.png", _box_hole())
    code, out_text, err = moebius("inpaint", image, "--mask", mask, "--polarity", "255_hole",
                                  "--weights", runs["student"], "--steps", 2, "--out", tmp_path / "out.png")
    assert code == 0, err
    assert "polarity" not in err  # declared: no warning
    record = _check_output(tmp_path / "out.png", pixels, _box_hole())
    assert record["vae"] == str(runs["vae"])  # found through the run's run.json
    assert record["weights_kind"] == "trained" and record["steps"] == 2
    assert record["guidance"] == 2.5 and record["sampler"]["paste_back"] == "blurred"  # Moebius's benchmark settings
    fit = record["fit"]
    assert fit["mode"] == "pad" and fit["model_input"] == [64, 64] and fit["scaled_to"] == [64, 50]
    assert fit["pad_bottom_right"] == [14, 0] and fit["resampled"] is True
    assert record["mask"] == {"file": str(mask), "polarity": "255_hole", "polarity_detected": False,
                              "hole_ratio": pytest.approx(_box_hole().mean(), abs=1e-6)}
    assert "90x70 via 64x64" in out_text


def test_box_resize_and_the_official_files_give_the_run_folders_pixels(tmp_path, moebius, runs, photo, monkeypatch):
    """``--weights official`` loads the same weights through moebius.weights and train.official: the
    same pixels as the run folder, for the same seed."""
    image, pixels = photo
    box = ",".join(map(str, BOX))
    common = ("--box", box, "--fit", "resize", "--steps", 2, "--seed", 7)
    code, _, err = moebius("inpaint", image, *common, "--weights", runs["student"], "--out", tmp_path / "run.png")
    assert code == 0, err
    monkeypatch.setenv(ENV_VAR, str(runs["weights"]))
    code, _, err = moebius("inpaint", image, *common, "--out", tmp_path / "official.png")  # --weights official
    assert code == 0, err
    record = _check_output(tmp_path / "official.png", pixels, _box_hole())
    assert record["weights"] == "official:ft_places2" and record["weights_kind"] == "official"
    assert record["vae"] == "official" and record["fit"]["model_input"] == [64, 64]
    assert record["fit"]["scaled_to"] == [64, 64] and record["mask"]["box"] == list(BOX)
    assert np.array_equal(_read(tmp_path / "official.png"), _read(tmp_path / "run.png"))


def test_undeclared_polarity_takes_the_smaller_region_and_warns(tmp_path, moebius, runs, photo) -> None:
    image, pixels = photo
    mask = _write_mask(tmp_path / "inverted.png", ~_box_hole())  # black hole on white: 255_known
    code, _, err = moebius("inpaint", image, "--mask", mask, "--weights", runs["student"], "--steps", 2,
                           "--out", tmp_path / "out.png")
    assert code == 0, err
    assert "assuming 255_known" in err and "--polarity" in err
    record = _check_output(tmp_path / "out.png", pixels, _box_hole())
    assert record["mask"]["polarity"] == "255_known" and record["mask"]["polarity_detected"] is True


# ---------------------------------------------------------------------------------------------
# Geometry (no model)
# ---------------------------------------------------------------------------------------------


def test_fit_plans() -> None:
    pad = plan_fit("pad", (70, 90), 64)
    assert (pad.scaled, pad.canvas, pad.pad) == ((50, 64), (64, 64), (14, 0))
    assert plan_fit("resize", (70, 90), 64).scaled == (64, 64)
    free = plan_fit("pad", (70, 90), None, 16)
    assert (free.scaled, free.canvas) == ((70, 90), (80, 96))  # not scaled, extended to the multiple
    assert plan_fit("resize", (70, 90), None, 16).canvas == (64, 96)  # nearest multiples


def test_a_thin_stroke_survives_the_shrink_and_the_padding_follows_the_edge() -> None:
    fit = plan_fit("pad", (300, 400), 64)  # shrinks by 6.25
    hole = torch.zeros(1, 1, 300, 400)
    hole[..., 100, 50:350] = 1  # one pixel high: nearest sampling would miss it
    hole[..., 290:, 380:] = 1  # touches the bottom edge
    image = torch.zeros(1, 3, 300, 400)
    x, m = fit.to_model(image, hole)
    assert x.shape == (1, 3, 64, 64) and m.shape == (1, 1, 64, 64)
    assert fit.scaled == (48, 64)
    assert m[0, 0, 16, 8:56].all()  # the stroke (row 100 · 0.16) is still a hole, all along, at 64 px
    scaled_h = fit.scaled[0]
    assert m[0, 0, scaled_h - 1, 61:].all()  # the corner hole reaches the last scaled row
    assert torch.equal(m[0, 0, scaled_h:, :], m[0, 0, scaled_h - 1 : scaled_h, :].expand(64 - scaled_h, 64))


# ---------------------------------------------------------------------------------------------
# Hostile inputs: one line each
# ---------------------------------------------------------------------------------------------


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("moebius: error:")]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    return lines[0]


@pytest.mark.hostile(
    "`moebius inpaint` on a missing image, a text file named .png, a missing mask, or a mask of another size",
    "one `moebius: error:` line naming the file (or both sizes); nothing written",
)
@pytest.mark.parametrize("case", ["missing_image", "not_an_image", "missing_mask", "mask_size"])
def test_bad_files_are_one_line(tmp_path, moebius, runs, photo, case) -> None:
    image, _ = photo
    mask = _write_mask(tmp_path / "mask.png", _box_hole())
    if case == "missing_image":
        image, expected = tmp_path / "nope.png", "image not found"
    elif case == "not_an_image":
        image = tmp_path / "text.png"
        image.write_text("not pixels")
        expected = "not a readable image"
    elif case == "missing_mask":
        mask, expected = tmp_path / "nomask.png", "mask not found"
    else:
        mask, expected = _write_mask(tmp_path / "small.png", _box_hole(), (W // 2, H // 2)), "45x35 but the image is 90x70"
    out = tmp_path / "out.png"
    line = _one_line(*moebius("inpaint", image, "--mask", mask, "--weights", runs["student"], "--out", out)[::2])
    assert expected in line
    assert not out.exists() and not Path(f"{out}.json").exists()


@pytest.mark.hostile(
    "`moebius inpaint` with an all-black or all-white mask (declared or not), a --box outside the image, "
    "malformed, or covering it all, both --mask and --box, or neither",
    "one `moebius: error:` line saying what is wrong with the mask; nothing written",
)
@pytest.mark.parametrize("case, expected", [
    ("all_black", "is all black"), ("all_white_declared", "is all white"), ("all_white", "is all white"),
    ("box_outside", "reaches beyond the 90x70 image"), ("box_malformed", "must be four integers"),
    ("box_whole", "covers the whole image"), ("both", "either --mask"), ("neither", "either --mask"),
])
def test_bad_masks_are_one_line(tmp_path, moebius, runs, photo, case, expected) -> None:
    image, _ = photo
    black = _write_mask(tmp_path / "black.png", np.zeros((H, W), bool))
    white = _write_mask(tmp_path / "white.png", np.ones((H, W), bool))
    args = {
        "all_black": ("--mask", black), "all_white_declared": ("--mask", white, "--polarity", "255_known"),
        "all_white": ("--mask", white), "box_outside": ("--box", "80,10,20,10"), "box_malformed": ("--box", "1,2,3"),
        "box_whole": ("--box", f"0,0,{W},{H}"), "both": ("--mask", black, "--box", "1,1,2,2"), "neither": (),
    }[case]
    out = tmp_path / "out.png"
    line = _one_line(*moebius("inpaint", image, *args, "--weights", runs["student"], "--out", out)[::2])
    assert expected in line
    assert not out.exists()


@pytest.mark.hostile(
    "`moebius inpaint` with --weights a file, a missing folder, the student's run for --model pixelhacker, "
    "`official` without the files, a baseline given --weights, --out not a PNG or the input image itself",
    "one `moebius: error:` line (the missing official file's name, source and place); the input untouched",
)
@pytest.mark.parametrize("case, expected", [
    ("weights_file", "is a file"), ("weights_missing", "run folder not found"),
    ("wrong_model", "does not match"), ("official_missing", "missing weight moebius_ft_places2"),
    ("baseline_weights", "loads its own weights"), ("out_jpg", "must be a .png"), ("out_is_input", "refusing to overwrite"),
])
def test_bad_weights_and_outputs_are_one_line(tmp_path, moebius, runs, photo, case, expected) -> None:
    image, _ = photo
    before = image.read_bytes()
    weights, model, out = str(runs["student"]), "moebius", tmp_path / "out.png"
    if case == "weights_file":
        weights = str(runs["student"] / "model.safetensors")
    elif case == "weights_missing":
        weights = str(tmp_path / "no-run")
    elif case == "wrong_model":
        model = "pixelhacker"
    elif case == "official_missing":
        weights = "official"
    elif case == "baseline_weights":
        model = "telea"
    elif case == "out_jpg":
        out = tmp_path / "out.jpg"
    else:
        out = image
    line = _one_line(*moebius("inpaint", image, "--box", "10,10,20,20", "--model", model, "--weights", weights,
                              "--out", out)[::2])
    assert expected in line
    assert image.read_bytes() == before


def test_a_baseline_runs_at_the_photos_own_size(tmp_path, moebius, photo) -> None:
    """OpenCV Telea takes any size: no resampling, the known pixels kept, the record says so."""
    image, pixels = photo
    code, _, err = moebius("inpaint", image, "--box", ",".join(map(str, BOX)), "--model", "telea",
                           "--out", tmp_path / "telea.png")
    assert code == 0, err
    record = _check_output(tmp_path / "telea.png", pixels, _box_hole())
    assert record["fit"]["model_input"] == [W, H] and record["fit"]["resampled"] is False
    assert record["weights_kind"] == "official"


def test_a_sideways_phone_photo_is_turned_upright_before_the_mask_is_matched(tmp_path, moebius, photo) -> None:
    """A JPEG stored 70x90 with EXIF orientation 6 shows 90x70: the mask and the output are upright."""
    _, pixels = photo
    stored = Image.fromarray(np.rot90(pixels, k=1).copy())  # what a camera writes: pixels turned, a tag to undo it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image = tmp_path / "phone.jpg"
    stored.save(image, exif=exif, quality=95)
    upright = np.asarray(Image.open(image).transpose(Image.Transpose.ROTATE_270)).astype(int)  # the JPEG's own pixels
    hole = np.zeros(upright.shape[:2], bool)
    hole[10:30, 20:40] = True
    mask = _write_mask(tmp_path / "mask.png", hole)  # drawn on the upright photo: 90 wide, 70 high
    code, _, err = moebius("inpaint", image, "--mask", mask, "--model", "telea", "--out", tmp_path / "out.png")
    assert code == 0, err
    result = _read(tmp_path / "out.png")
    assert result.shape == upright.shape == (H, W, 3)
    assert np.abs(upright - pixels).mean() < 10  # upright is the astronaut as shot (JPEG-close), not turned
    assert np.array_equal(result[~hole], upright[~hole])
    assert json.loads((tmp_path / "out.png.json").read_text())["upright_from_exif"] is True
