"""Tiny benchmark folders, mask sets and sample folders laid out as the workflow writes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from moebius.data.manifest import row_for_png, write_manifest

MASK_COLUMNS = "id,seed,hole_ratio,protocol,version,polarity,size,cv2_version"


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def image_of(i: int, size: int) -> np.ndarray:
    """Image ``i``: a flat colour that differs per image."""
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[:] = (30 * i % 256, 200, 255 - 30 * i % 256)
    return rgb


def hole_of(i: int, n: int, size: int) -> np.ndarray:
    """Image ``i``'s hole: the top ``i + 1`` of ``n + 1`` bands (the hole grows with i)."""
    hole = np.zeros((size, size), bool)
    hole[: size * (i + 1) // (n + 1)] = True
    return hole


def write_benchmark(folder: Path, n: int, size: int) -> list[str]:
    """``img0..img{n-1}.png`` + a real ``manifest.csv`` (sha256 of each file)."""
    ids = [f"img{i}" for i in range(n)]
    for i, image_id in enumerate(ids):
        _png(folder / f"{image_id}.png", image_of(i, size))
    write_manifest(folder, [row_for_png(i, f"fixture/{i}.jpg", (folder / f"{i}.png").read_bytes(), size, size) for i in ids])
    return ids


def write_masks(folder: Path, n: int, size: int, protocol: str = "mat_small_512", version: int = 1) -> None:
    """The stored mask set of ``write_benchmark``'s ids: 255 = hole, manifest with hole_ratio."""
    rows = []
    for i in range(n):
        hole = hole_of(i, n, size)
        _png(folder / f"img{i}.png", np.where(hole, 255, 0).astype(np.uint8))
        rows.append(f"img{i},0,{float(hole.mean())!r},{protocol},{version},hole=255,{size},4.10.0")
    (folder / "manifest.csv").write_text(MASK_COLUMNS + "\n" + "\n".join(rows) + "\n")


def write_samples(folder: Path, n: int, size: int, level: int, model: str, weights_kind: str = "trained") -> None:
    """A model's composited outputs: the image with its hole filled with grey ``level``, + meta.json."""
    for i in range(n):
        out = image_of(i, size)
        out[hole_of(i, n, size)] = level
        _png(folder / f"img{i}.png", out)
    meta = {"model": model, "weights_kind": weights_kind, "scale": "smoke", "n_images": n}
    (folder / "meta.json").write_text(json.dumps(meta))


def write_grid_fixture(root: Path, benchmark: str = "places2_small", models: tuple[str, ...] = ("moebius", "telea"),
                       n: int = 6, size: int = 32, experiment: str = "main") -> dict[str, Path]:
    """One benchmark, its masks and every model's samples under ``root``; returns the three folders.

    Model ``k``'s samples fill the hole with grey ``40 * (k + 1)``; flux_fill is labelled ``standin``.
    """
    images = root / "data" / "benchmarks" / benchmark
    masks = root / "masks" / "mat_small_512" / "v1" / benchmark
    samples = root / "results" / "samples" / experiment
    write_benchmark(images, n, size)
    write_masks(masks, n, size)
    for k, model in enumerate(models):
        write_samples(samples / model / benchmark, n, size, 40 * (k + 1), model,
                      "standin" if model == "flux_fill" else "trained")
    return {"images": images, "masks": masks, "samples": samples}


def grid_arg(folders: dict[str, Path], benchmark: str = "places2_small", models: tuple[str, ...] = ("moebius", "telea"),
             experiment: str = "main") -> str:
    """The ``--grid`` value the report rule passes for these folders."""
    return (f"experiment={experiment},benchmark={benchmark},images={folders['images']},masks={folders['masks']},"
            f"samples={folders['samples']},models={'+'.join(models)}")
