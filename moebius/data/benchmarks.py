"""Benchmark image sets: a dataset split, selected and preprocessed to one protocol (Sec. 4.1).

``prepare_benchmark`` reads a dataset folder's manifest, picks ``n_images`` ids with a
deterministic rule (``selection.select_ids``), checks each chosen image's sha256 against the
dataset manifest as it is read, applies the protocol's preprocessing
(``preprocess.PREPROCESSORS``) at the benchmark size, and writes ``<out_dir>/<id>.png`` +
``manifest.csv`` + ``selection.json`` (the rule, seed, sizes and the source data version, so the
choice is recorded beside the images). Masks and evaluation read only this folder.

The manifest helpers (``read_manifest``, ``verify_manifest``, ``data_version``) live in
``manifest.py`` and are re-exported here for callers that think in benchmarks.
"""

from __future__ import annotations

from pathlib import Path

from moebius.atomic import write_json
from moebius.data.manifest import (
    ManifestRow,
    data_version,
    load_verified_image,
    read_manifest,
    row_for_png,
    verify_manifest,
    write_manifest,
)
from moebius.data.preprocess import get_preprocessor, save_png
from moebius.data.selection import select_ids
from moebius.errors import DataError

__all__ = ["data_version", "prepare_benchmark", "read_manifest", "verify_manifest"]

SELECTION_NAME = "selection.json"


def prepare_benchmark(
    dataset_dir: Path,
    out_dir: Path,
    n_images: int | None,
    size: int,
    preprocess: str,
    seed: int,
    rule: str = "first",
) -> Path:
    """Select and preprocess a benchmark's images from ``dataset_dir``; return ``out_dir``.

    ``n_images`` None takes every image. Images already in ``out_dir`` from an earlier run with
    other settings are removed when they are not selected, so the folder holds exactly the
    manifest's images.
    """
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    if dataset_dir.resolve() == out_dir.resolve():
        raise DataError(f"benchmark folder must differ from the dataset folder {dataset_dir}")
    transform = get_preprocessor(preprocess)
    source = read_manifest(dataset_dir)
    chosen = select_ids(list(source["id"]), n_images, seed, rule)
    expected = dict(zip(source["id"], source["sha256"]))
    source_label = f"{dataset_dir.parent.name}/{dataset_dir.name}"

    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[ManifestRow] = []
    for image_id in chosen:
        # checked against the source manifest as it is read: the benchmark must not inherit a replaced image
        img = transform(load_verified_image(dataset_dir / f"{image_id}.png", expected[image_id]), size)
        png = save_png(out_dir / f"{image_id}.png", img)
        rows.append(row_for_png(image_id, f"{source_label}/{image_id}.png", png, img.shape[1], img.shape[0]))
    keep = {f"{i}.png" for i in chosen}
    for stale in out_dir.glob("*.png"):
        if stale.name not in keep:
            stale.unlink()
    write_json(
        out_dir / SELECTION_NAME,
        {
            "dataset_dir": str(dataset_dir),
            "dataset_version": data_version(dataset_dir),
            "n_available": int(len(source)),
            "n_images": len(chosen),
            "rule": rule,
            "seed": seed,
            "size": size,
            "preprocess": preprocess,
        },
    )
    write_manifest(out_dir, rows)  # last: its presence marks a complete benchmark folder
    return out_dir
