"""Benchmark image sets: a dataset split, selected and preprocessed to one protocol (Sec. 4.1).

``prepare_benchmark`` reads a dataset folder's manifest, picks ``n_images`` ids with a
deterministic rule (``selection.select_ids``), checks each chosen image's sha256 against the
dataset manifest as it is read, applies the protocol's preprocessing
(``preprocess.PREPROCESSORS``) at the benchmark size, and writes ``<out_dir>/<id>.png`` +
``manifest.csv`` + ``selection.json`` (the rule, seed, sizes, the source data version and the
split as resolved, so the choice is recorded beside the images; ``benchmark_settings`` turns it
into the ``data_split`` / ``data_selection`` / ``data_preprocess`` of every result record). Masks and evaluation read only this folder.

The manifest helpers (``read_manifest``, ``verify_manifest``, ``data_version``) live in
``manifest.py`` and are re-exported here for callers that think in benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from moebius.atomic import write_json
from moebius.config import Config
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
from moebius.data.registry import SPLIT_NAME
from moebius.data.selection import select_ids
from moebius.errors import DataError

__all__ = ["benchmark_settings", "data_version", "prepare_benchmark", "read_manifest", "source_stems",
           "verify_manifest"]

SELECTION_NAME = "selection.json"


def prepare_configured(cfg: Config, benchmark: str, dataset_dir: Path, out_dir: Path) -> Path:
    """``prepare_benchmark`` with the settings of ``cfg.benchmarks[benchmark]`` (``moebius data benchmark``)."""
    bench = cfg.benchmark(benchmark)
    return prepare_benchmark(dataset_dir, out_dir, n_images=bench.n_images, size=bench.size,
                             preprocess=bench.preprocess, seed=cfg.seed, rule=bench.selection)


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
            "split": _split_of(dataset_dir),
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


def _split_of(dataset_dir: Path) -> dict:
    """The split a dataset folder holds: its ``split.json`` (fetched splits), else the folder's names."""
    path = Path(dataset_dir) / SPLIT_NAME
    if path.is_file():
        try:
            split = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path} is not valid JSON ({exc})") from exc
        if isinstance(split, dict) and {"dataset", "resolved"} <= set(split):
            return split
        raise DataError(f"{path} does not say which dataset and split the folder holds")
    return {"dataset": Path(dataset_dir).parent.name, "split": Path(dataset_dir).name,
            "resolved": Path(dataset_dir).name}


def benchmark_settings(bench_dir: Path) -> dict[str, str]:
    """What a result record says about the images it scored (``settings`` of ``records.make_record``).

    ``data_split``: dataset and split as resolved (``ffhq/val_first_10k``: which 10K of FFHQ);
    ``data_selection``: the rule, count and pool; ``data_preprocess``: the protocol's preprocessing
    and size. Read from the folder's ``selection.json``, i.e. what was prepared, not what a config
    says now; a folder without one (made by hand) says ``unknown``.
    """
    path = Path(bench_dir) / SELECTION_NAME
    if not path.is_file():
        return {"data_split": "unknown", "data_selection": "unknown", "data_preprocess": "unknown"}
    try:
        sel = json.loads(path.read_text(encoding="utf-8"))
        split = sel.get("split") or {}
        seeded = f", seed {sel['seed']}" if sel["rule"] == "seeded" else ""
        return {
            "data_split": f"{split.get('dataset', '?')}/{split.get('resolved', '?')}",
            "data_selection": f"{sel['rule']} {sel['n_images']} of {sel['n_available']}{seeded}",
            "data_preprocess": f"{sel['preprocess']} {sel['size']}",
        }
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path} is not a benchmark selection record ({type(exc).__name__}: {exc})") from exc


def source_stems(bench_dir: Path) -> dict[str, str]:
    """id -> the file stem of the original image it was made from (FFHQ ``00042``, CelebA-HQ ``1``).

    Followed through ``selection.json`` to the dataset folder's manifest (``source`` column), so that
    files named after the originals (official mask sets) can be paired with our ids. Stems shared by
    two ids are left out (they name no single image); an unreachable dataset folder gives ``{}``.
    """
    path = Path(bench_dir) / SELECTION_NAME
    try:
        dataset_dir = Path(json.loads(path.read_text(encoding="utf-8"))["dataset_dir"])
        ids = set(read_manifest(bench_dir)["id"])
        source = read_manifest(dataset_dir)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, DataError):
        return {}
    stems = {i: PurePosixPath(str(src).replace("\\", "/")).stem
             for i, src in zip(source["id"], source["source"]) if i in ids}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {i: stem for i, stem in stems.items() if stem and counts[stem] == 1}

