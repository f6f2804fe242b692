"""Benchmarks smaller than the model: how they are fed to it and at which size they are scored.

Config ``sample.score_size`` (switch ``score_size``, ``moebius.switches``). The paper scores FFHQ (256)
and Places2 (256) "at 256" (Sec. 4.1); the student only runs at its trained size (64 latents = 512 px;
64 px at smoke scale, where the "256" benchmarks are 32 px). Two forms:

* ``model`` (the official code; default). ``RemovalSDXLPipeline_BatchMode`` (removal/v1_2/pipeline.py
  of hustvl/Moebius) binarises the mask at 127.5, resizes image *and* mask with LANCZOS to 512
  (``resize_image_to_multiple_of_64``), binarises the resized mask again (``mask / 255 >= 0.5``), and
  returns its result at 512: nothing is resized back. Here: the benchmark image (uint8) LANCZOS to the
  model's size, the mask LANCZOS then ``>= 128``; the output is composited with that image and mask and
  written at the model's size, and it is scored against the same LANCZOS image of the ground truth
  (``score_truth``), so the known region of sample and truth are the same pixels.
* ``benchmark`` (DEVIATION from the official code, the project's earlier form): bicubic to the model's
  size (masks nearest), the output bicubic back to the benchmark's size and composited with the
  original image: scored at the benchmark's size.

What FID and LPIPS compare under ``model`` (256 → 512): two 512-px sets whose known regions are
identical and whose ground truth carries no detail finer than its 256-px source (an upsampled image);
only the hole holds 512-px content, drawn by the model. FID's real statistics are those of upsampled
256-px images (Inception then resizes both sets to 299), so a model drawing detail sharper than the
truth is penalised where ``benchmark`` would have removed that detail by downsampling; LPIPS runs at
512, where its receptive fields cover half as much of the image as at 256. Neither number is
comparable with one scored at 256 (MI-GAN's protocol, the baselines that run at the benchmark's own
size): every record says which size scored it (``scored_at``) and which form (``score_size``:
``model``, ``benchmark``, or ``native`` when the model ran at the benchmark's size).

A note on the official code path: ``infer/infer_moebius.py`` at its default ``--resolution 512``
resizes a 256 image BICUBIC (mask NEAREST) to 512 in its dataset before the pipeline's LANCZOS step,
which is then a no-op; only with ``--resolution 256`` does the pipeline's LANCZOS do the upscaling.
Which one the paper's numbers used is not stated; ``model`` follows the pipeline (LANCZOS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from moebius.data.manifest import data_version as manifest_version
from moebius.data.manifest import (
    load_verified_image,
    read_manifest,
    row_for_png,
    verify_manifest,
    write_manifest,
)
from moebius.data.preprocess import save_png
from moebius.errors import EvalError

MODES = ("model", "benchmark")
MASK_THRESHOLD = 128  # the pipeline's ``mask / 255 >= 0.5`` on uint8 pixels


def resize_plan(mode: str, bench_size: int, work_size: int) -> dict | None:
    """What happens to a benchmark of ``bench_size`` px run at ``work_size``; None when they are equal."""
    if mode not in MODES:
        raise EvalError(f"sample.score_size must be one of {', '.join(MODES)}, got {mode!r}")
    if work_size == bench_size:
        return None
    if mode == "model":
        return {"from": bench_size, "to": work_size, "images": "lanczos", "masks": f"lanczos>={MASK_THRESHOLD}",
                "mode": "model", "scored_at": work_size}
    return {"from": bench_size, "to": work_size, "images": "bicubic", "masks": "nearest", "mode": "benchmark",
            "scored_at": bench_size}


def lanczos_uint8(image: np.ndarray, size: int) -> np.ndarray:
    """An (H, W, 3) uint8 image resized to ``size`` x ``size`` with Pillow's LANCZOS (as the pipeline)."""
    if image.shape[:2] == (size, size):
        return image.copy()
    return np.array(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def lanczos_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B,3,H,W) images in [-1, 1] read from uint8 files → LANCZOS ``size`` x ``size``, same range.

    The pixels are taken back to the uint8 values they were read from (exactly: ``read_image`` maps
    v to v / 127.5 - 1), so the result equals ``lanczos_uint8`` of the file, which ``score_truth``
    uses for the ground truth.
    """
    pixels = ((images.detach().cpu().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    out = [torch.from_numpy(lanczos_uint8(p.permute(1, 2, 0).numpy(), size)).permute(2, 0, 1) for p in pixels]
    return torch.stack(out).float() / 127.5 - 1.0


def lanczos_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """(B,1,H,W) binary masks (1 = hole) → LANCZOS to ``size`` as 0/255 images, then ``>= 128``."""
    out = []
    for m in masks.detach().cpu():
        grey = Image.fromarray(np.where(m[0].numpy() > 0.5, 255, 0).astype(np.uint8), mode="L")
        resized = np.asarray(grey.resize((size, size), Image.Resampling.LANCZOS))
        out.append(torch.from_numpy((resized >= MASK_THRESHOLD).astype(np.float32))[None])
    return torch.stack(out)


def score_truth(real_dir: Path, size: int, cache_root: Path) -> Path:
    """The ground truth of the ``model`` form: every benchmark image LANCZOS to ``size``, in a folder.

    Content-addressed (``<cache_root>/<data version>_lanczos<size>_pillow<version>/``), so every model and
    every evaluation of one benchmark share it; each source image is checked against the benchmark
    manifest as it is read, the folder gets its own manifest (written last), and a folder found
    there is verified against it before use. PNG encoding is deterministic, so two jobs building it
    at once write the same bytes.
    """
    real_dir = Path(real_dir)
    # the Pillow version is part of the name: its LANCZOS made the samples' known region too
    out = Path(cache_root) / f"{manifest_version(real_dir)}_lanczos{int(size)}_pillow{PIL.__version__}"
    if (out / "manifest.csv").is_file():
        verify_manifest(out)  # a damaged cache is an error naming the file, never a silent score
        return out
    rows = []
    for image_id, expected in zip(*(read_manifest(real_dir)[c] for c in ("id", "sha256"))):
        img = lanczos_uint8(load_verified_image(real_dir / f"{image_id}.png", expected), size)
        png = save_png(out / f"{image_id}.png", img)
        rows.append(row_for_png(image_id, f"lanczos {size} of {real_dir.name}/{image_id}.png", png, size, size))
    write_manifest(out, rows)
    return out


def scoring_truth(meta: dict, real_dir: Path, cache_root: Path) -> tuple[Path, dict]:
    """(ground-truth folder to score a sample folder against, its record settings) from ``meta.json``.

    Settings: ``score_size`` = the form that applied (``model`` / ``benchmark``, or ``native`` when the
    samples are at the benchmark's own size) and ``scored_at`` = the pixel size of what was scored.
    """
    plan = meta.get("resized")
    if not plan:
        return Path(real_dir), {"score_size": "native", "scored_at": meta.get("size")}
    if not isinstance(plan, dict) or "to" not in plan:
        raise EvalError(f"meta.json: 'resized' is not a resize plan: {plan!r}")
    mode = plan.get("mode", "benchmark")  # folders written before score_size existed resized back
    if mode == "model":
        return score_truth(Path(real_dir), int(plan["to"]), Path(cache_root)), {"score_size": "model",
                                                                                "scored_at": int(plan["to"])}
    return Path(real_dir), {"score_size": "benchmark", "scored_at": int(plan["from"])}
