"""Inpaint one benchmark with one method: composited samples named by image id, plus meta.json.

DESIGN.md (samples contract) and MASKS.md (evaluation conventions): images and masks are paired by
id through the benchmark manifest, never by sorted file order (MAT #86/#131); every output is
composited with the known region (output·hole + input·known) before it is written, since FID and
LPIPS are computed on composites; ``meta.json`` records how the samples were made. Our models run
through ``moebius.diffusion.inpaint_batch`` with their own sampling settings
(``moebius.diffusion.model_sampling``: PixelHacker as its infer script, Moebius as its own), and
hand their output in as their official inference does (``sample.paste_back``: the blurred paste-back
for Moebius, the raw output for PixelHacker; ``hard`` composites them like every other method, whose
output always goes through ``baselines.run_baseline`` and the hard composite).

Resumable and atomic: each PNG is written under its final name only when complete, ids whose PNG
already exists and reads back at the right size are skipped, and ``meta.json`` is written last, so
its presence marks a complete folder. A hidden ``.settings.json`` written first pins the settings
of a partial run, so a resume with different settings fails instead of mixing samples.

Ids become file names (``<images>/<id>.png``, ``<out>/<id>.png``), so every id is checked
(``moebius.data.manifest.check_id``) before a path is built from it: an id like ``../x`` can
neither read nor write outside its folder. The benchmark folder is verified against its manifest's
checksums before anything is sampled, and an unreadable image is a one-line ``EvalError``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from moebius.atomic import atomic_path, write_json
from moebius.config import Config, ConfigError, config_hash
from moebius.data.manifest import check_id, check_ids, read_table, verify_manifest
from moebius.device import resolve_device
from moebius.diffusion.composite import composite
from moebius.diffusion.latents import vae_factor
from moebius.diffusion.sampler import inpaint_batch, model_sampling
from moebius.errors import DataError, EvalError
from moebius.eval.baselines import (
    get_baseline,
    load_baseline,
    provenance,
    run_baseline,
    sample_settings,
    steps_for,
    weights_kind,
    work_size,
)
from moebius.eval.score_size import lanczos_images, lanczos_masks, resize_plan
from moebius.progress import progress
from moebius.seeding import image_seed

MANIFEST = "manifest.csv"
META = "meta.json"
SETTINGS = ".settings.json"
SWEEP = "sweep.json"  # a CFG sweep's folder: {"guidance": [...], "folders": [...]} (``moebius sample``)


# ---------------------------------------------------------------------------------------------
# Reading inputs
# ---------------------------------------------------------------------------------------------


def manifest_ids(folder: Path) -> list[str]:
    """Ids of a folder's ``manifest.csv``, in manifest order (ids stay strings: "007" is not 7).

    Every id is checked as a file name here, where paths are about to be built from them.
    """
    path = Path(folder) / MANIFEST
    table = read_table(path, EvalError, f"no manifest at {path}", f"unreadable manifest {path}")
    if "id" not in table.columns:
        raise EvalError(f"{path}: no 'id' column")
    ids = list(table["id"])
    if not ids:
        raise EvalError(f"{path} lists no images")
    check_ids(ids, EvalError, str(path))
    if len(set(ids)) != len(ids):
        raise EvalError(f"{path}: duplicate ids")
    return ids


_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what PIL raises on bad bytes


def read_image(path: Path, size: int) -> torch.Tensor:
    """(3,size,size) in [-1,1] from an RGB PNG; wrong size, missing or unreadable file → EvalError."""
    if not path.is_file():
        raise EvalError(f"benchmark image not found: {path}")
    try:
        with Image.open(path) as im:
            if im.size != (size, size):  # before decoding: a huge image is never decoded
                raise EvalError(f"{path}: image is {im.size[0]}x{im.size[1]}, benchmark size is {size}")
            rgb = np.asarray(im.convert("RGB"))
    except EvalError:
        raise
    except _UNREADABLE as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EvalError(f"{path}: not a readable image ({reason})") from exc
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 127.5 - 1.0


def read_masks(masks_dir: Path, ids: list[str], size: int) -> tuple[dict[str, np.ndarray], dict]:
    """Masks of ``ids`` (bool, True = hole) and what the mask set says about itself."""
    from moebius.masks import MaskError, read_mask_set

    try:
        masks, info = read_mask_set(Path(masks_dir), ids, size)
    except MaskError as exc:
        raise EvalError(str(exc)) from exc
    return masks, {"protocol": info.protocol, "version": info.version, "polarity": info.polarity,
                   "converted": info.converted, "dir": str(masks_dir)}


def read_sweep(folder: Path) -> list[tuple[float, Path]]:
    """``(guidance, sample folder)`` pairs of a CFG sweep's ``sweep.json``.

    The folder names come from a file and become paths, so each is checked like an id: a sweep
    cannot point evaluation outside its own folder.
    """
    path = Path(folder) / SWEEP
    if not path.is_file():
        raise EvalError(f"{path} is missing: a cfg_sweep evaluation needs the folder `moebius sample` "
                        f"wrote with several --guidance")
    try:
        sweep = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvalError(f"{path} is not valid JSON ({(str(exc).splitlines() or [''])[0]})") from exc
    guidance = sweep.get("guidance") if isinstance(sweep, dict) else None
    folders = sweep.get("folders") if isinstance(sweep, dict) else None
    if not isinstance(guidance, list) or not isinstance(folders, list) or len(guidance) != len(folders) \
            or not guidance:
        raise EvalError(f"{path} must hold equal, non-empty lists 'guidance' and 'folders'")
    pairs = []
    for g, name in zip(guidance, folders):
        if isinstance(g, bool) or not isinstance(g, (int, float)):
            raise EvalError(f"{path}: guidance {g!r} is not a number")
        try:
            check_id(name)
        except DataError:
            raise EvalError(f"{path}: sample folder {name!r} is not a plain folder name") from None
        pairs.append((float(g), Path(folder) / name))
    return pairs


def is_valid_png(path: Path, size: int) -> bool:
    """True when ``path`` is a complete RGB PNG of ``size``² (a resumed run keeps it)."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as im:
            im.load()
            return im.format == "PNG" and im.size == (size, size) and im.mode == "RGB"
    except _UNREADABLE:
        return False


def write_png(path: Path, image: torch.Tensor) -> None:
    """(3,H,W) in [-1,1] → 8-bit RGB PNG, atomically."""
    pixels = ((image.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp, format="PNG")


# ---------------------------------------------------------------------------------------------
# Resizing to the model's resolution
# ---------------------------------------------------------------------------------------------


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize_images(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of (B,3,H,W) [-1,1] images to a side or (H, W) (antialiased when shrinking), clamped."""
    hw = _hw(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    shrink = hw[0] < images.shape[-2] or hw[1] < images.shape[-1]
    out = F.interpolate(images, size=hw, mode="bicubic", align_corners=False, antialias=shrink)
    return out.clamp(-1.0, 1.0)


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest resize of (B,1,H,W) binary masks (stays binary)."""
    if masks.shape[-1] == size:
        return masks
    return F.interpolate(masks, size=(size, size), mode="nearest")


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


def load_ours(run_dir: Path | None, vae_dir: Path | None, model_key: str):
    """(model, vae, run meta) of a finished run and its VAE run (``moebius.train``); also ``moebius inpaint``'s."""
    if run_dir is None or vae_dir is None:
        raise EvalError(f"{model_key}: needs a run folder and a VAE folder (run_dir, vae_dir)")
    from moebius.errors import TrainError
    from moebius.train import load_run, load_vae

    try:
        model, meta = load_run(Path(run_dir))
        vae = load_vae(Path(vae_dir))
    except TrainError as exc:
        raise EvalError(f"{model_key}: {exc}") from exc
    return model, vae, meta


def inpaint_benchmark(
    cfg: Config,
    model_key: str,
    run_dir: Path | None,
    vae_dir: Path | None,
    benchmark: str,
    images_dir: Path,
    masks_dir: Path,
    out_dir: Path,
    guidance: float | None = None,
    start: str | None = None,
) -> dict:
    """Write ``<out_dir>/<id>.png`` (composited) for every benchmark image, then ``meta.json``; return meta.

    ``model_key`` is a baseline name (``moebius`` / ``pixelhacker`` load ``run_dir`` and ``vae_dir``).
    ``guidance`` None → the model's default (``model_sampling``: 2.5 / 2.0 by benchmark domain for
    Moebius, 4.5 for PixelHacker; the method's own otherwise). ``start`` (``noise`` | ``gt_noised``)
    overrides ``sample.start`` for our models (``eval.sampler_starts``); it is recorded in ``meta.json``.
    """
    try:
        bench = cfg.benchmark(benchmark)
    except ConfigError as exc:  # inpainting reports every bad input as its own error type
        raise EvalError(str(exc)) from exc
    spec = get_baseline(model_key)
    images_dir, masks_dir, out_dir = Path(images_dir), Path(masks_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EvalError(f"output folder {out_dir} is a file, not a folder")
    verify_manifest(images_dir)  # the pixels are the ones the manifest (and its data version) vouch for
    ids = manifest_ids(images_dir)
    masks, mask_info = read_masks(masks_dir, ids, bench.size)

    if start is not None and start not in ("noise", "gt_noised"):
        raise EvalError(f"unknown sampler start {start!r}; choose 'noise' or 'gt_noised'")
    if start is not None and spec.family != "ours":
        raise EvalError(f"{model_key} runs its own pipeline: a sampler start applies to our models only")
    sample_cfg, default_guidance = model_sampling(cfg.sample, model_key, bench.domain)
    if start is not None:
        sample_cfg = dataclasses.replace(sample_cfg, start=start)
    device = resolve_device("auto")
    model = vae = None
    if spec.family == "ours":
        model, vae, run_meta = load_ours(run_dir, vae_dir, model_key)
        model, vae = model.to(device).eval(), vae.to(device).eval()
        kind = str(run_meta.get("weights_kind", "trained"))
        model_size: int | None = model.latent_size * vae_factor(vae)
        if guidance is None:
            guidance = default_guidance
        sampler = {"start": sample_cfg.start, "strength": sample_cfg.strength, "noise_offset": sample_cfg.noise_offset,
                   "paste_back": sample_cfg.paste_back, "paste_blur": sample_cfg.paste_blur,
                   "precision": sample_cfg.precision, "compile": sample_cfg.compile}
    else:
        load_baseline(cfg, model_key, benchmark)  # build it once now: a method that cannot run fails before any work
        kind = weights_kind(cfg, model_key, benchmark)
        model_size = work_size(cfg, model_key, benchmark)  # the checkpoint's native size; None: the benchmark's
        if guidance is None:
            guidance = spec.default_guidance
        sampler = {"start": "pipeline" if spec.family == "diffusers" else "n/a",
                   **sample_settings(cfg, model_key, benchmark)}

    size_run = model_size or bench.size
    # The student only runs at its trained size (64 latents → 512 px): a benchmark of another size (the
    # 256-px ones; 32 px at smoke scale) is resized to it; sample.score_size says how and at which size
    # the samples are written and scored (moebius/eval/score_size.py). A baseline's fixed-size checkpoint
    # (MAT, MI-GAN, CoModGAN, SD 1.5) runs at its native size and is resized back and scored at the
    # benchmark's size, as their own evaluation does (MI-GAN's scripts/evaluate_fid_lpips.py).
    resized = resize_plan(cfg.sample.score_size if spec.family == "ours" else "benchmark", bench.size, size_run)
    out_size = resized["scored_at"] if resized else bench.size

    settings = {
        "model": model_key, "display": spec.display, "benchmark": benchmark, "weights_kind": kind,
        "guidance": guidance, "steps": steps_for(cfg, model_key), "seed": cfg.sample.seed, "sampler": sampler,
        "size": bench.size, "model_size": size_run, "resized": resized, "out_size": out_size, "masks": mask_info,
        "scale": cfg.scale, "sample_config_hash": config_hash(cfg.sample),
    }
    _check_resume(out_dir, settings)

    pending = [i for i in ids if not is_valid_png(out_dir / f"{i}.png", out_size)]
    batch_size = max(1, cfg.sample.batch_size)
    started = time.perf_counter()
    with progress(total=len(pending), desc=f"{model_key}/{benchmark}", unit="img") as bar:
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            images = torch.stack([read_image(images_dir / f"{i}.png", bench.size) for i in chunk])  # (B,3,S,S)
            hole = torch.stack([torch.from_numpy(masks[i]) for i in chunk]).unsqueeze(1).float()  # (B,1,S,S)
            seeds = [image_seed(cfg.sample.seed, i) for i in chunk]
            if resized and resized["mode"] == "model":  # the official pipeline's LANCZOS (mask re-binarised)
                x, m = lanczos_images(images, size_run), lanczos_masks(hole, size_run)
            else:
                x, m = resize_images(images, size_run), resize_masks(hole, size_run)
            if spec.family == "ours":
                out = inpaint_batch(model, vae, x.to(device), m.to(device), seeds, float(guidance), sample_cfg)
            else:
                out = run_baseline(cfg, model_key, x, m, seeds, guidance, benchmark=benchmark)
            # Our sampler pastes back itself (`blurred` / `none` are scored as the official inference hands them
            # in); `hard` and the baselines get a composite: scored images keep the known pixels exactly.
            hard = spec.family != "ours" or sample_cfg.paste_back == "hard"
            if resized and resized["mode"] == "model":
                out = out.float().cpu()  # kept at the model's size, as the pipeline returns it
                if hard:
                    out = composite(out, x, m)
            else:
                # DEVIATION (official pipeline, sample.score_size = benchmark): the output is resized back
                # to the benchmark's size (bicubic) and scored there; the pipeline returns the 512 image.
                # Baselines always come here: their own evaluation resizes back (see resize_plan above).
                out = resize_images(out.float().cpu(), bench.size)
                if hard:
                    out = composite(out, images, hole)
            for image_id, image in zip(chunk, out):
                write_png(out_dir / f"{image_id}.png", image)
            bar.update(len(chunk))
    elapsed = time.perf_counter() - started

    meta = {**settings, "n_images": len(ids), "ids": ids, "n_generated_this_run": len(pending),
            "seconds_this_run": round(elapsed, 3),
            "seconds_per_image": round(elapsed / len(pending), 4) if pending else None}
    if spec.family != "ours":
        meta["weights"] = provenance(cfg, model_key, benchmark)  # file, digests: recorded on first use
    write_json(out_dir / META, meta)
    return meta


def _check_resume(out_dir: Path, settings: dict) -> None:
    """Refuse to add samples to a folder made with other settings; pin the settings of this run."""
    for name in (META, SETTINGS):
        path = out_dir / name
        if path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise EvalError(f"{path} is not valid JSON ({exc}); delete {out_dir} or choose another "
                                f"output folder") from exc
            if not isinstance(old, dict):
                raise EvalError(f"{path} is not a settings object; delete {out_dir} or choose another output folder")
            old = {k: old.get(k) for k in settings}
            new = json.loads(json.dumps(settings, default=str))  # the same JSON round trip
            if old != new:
                changed = sorted(k for k in settings if old.get(k) != new.get(k))
                raise EvalError(f"{out_dir} holds samples made with other settings ({', '.join(changed)}); "
                                f"delete it or choose another output folder")
    write_json(out_dir / SETTINGS, settings)
