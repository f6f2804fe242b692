"""Qualitative comparison grids: the paper's side-by-side figure (masked input, each model, ground truth).

For one benchmark of one experiment, every model is shown on the **same images with the same
masks** (the stored mask set, 255 = hole): rows are images, columns are the masked input, each
model's composited output (``results/samples/<experiment>/<model>/<benchmark>/<id>.png``) and the
ground truth (``data/benchmarks/<benchmark>/<id>.png``, checked against its manifest). The images
are picked evenly along the hole-ratio order of the mask set, so a grid runs from the smallest hole
to the largest instead of showing whichever ids sort first.

Each cell is written once as a small PNG thumbnail (``<thumbs>/<experiment>/<benchmark>/<id>/<column>.png``)
for the HTML page; ``plot_grid`` also draws the grid as one figure for ``report.md`` and Snakemake's
report. Thumbnails smaller than ``THUMB_PX`` are enlarged by a whole factor with nearest-neighbour
copies (no interpolated pixels: a 32-px smoke output stays exactly what the model made); larger
ones are reduced (Lanczos) to fit.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from moebius.atomic import atomic_path
from moebius.data.manifest import check_id, load_verified_image, read_manifest
from moebius.data.preprocess import load_image
from moebius.errors import DataError, ReportError
from moebius.report.names import BENCHMARK_NAMES, display_name

THUMB_PX = 128  # cell size on the page (CSS px); the longer side of every thumbnail
GRID_IMAGES = 4  # rows per grid unless the caller asks for another number
HOLE_RGB = (255, 255, 255)  # the masked input shows the hole in white, as the paper's figures do
INPUT, TRUTH = "input", "gt"  # column keys of the first and last column

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")  # experiment / benchmark / model: path parts


@dataclass(frozen=True)
class GridSpec:
    """Where one grid's pixels come from."""

    experiment: str  # main | ood | ... (the samples' first folder level)
    benchmark: str
    images: Path  # the benchmark folder: <id>.png + manifest.csv
    masks: Path  # the stored mask set: <id>.png + manifest.csv (id, hole_ratio)
    samples: Path  # results/samples/<experiment>: <model>/<benchmark>/<id>.png (+ meta.json)
    models: tuple[str, ...]


@dataclass(frozen=True)
class Column:
    key: str  # "input", a model key, or "gt"
    label: str  # header text
    weights_kind: str  # of a model's samples ("" for input / ground truth)


@dataclass(frozen=True)
class GridRow:
    image_id: str
    hole_ratio: float
    thumbs: tuple[Path, ...]  # one per column, in column order


@dataclass(frozen=True)
class Grid:
    spec: GridSpec
    columns: tuple[Column, ...]
    rows: tuple[GridRow, ...]
    source_px: int  # side of the benchmark images
    scale: str  # of the samples' meta.json ("smoke" | "full"; "" when not stated)
    protocol: str  # mask protocol and version, e.g. "mat_large_512 v1"


def parse_grid(text: str) -> GridSpec:
    """``experiment=main,benchmark=b,images=DIR,masks=DIR,samples=DIR,models=m1+m2`` → ``GridSpec``."""
    fields = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    missing = [k for k in ("experiment", "benchmark", "images", "masks", "samples", "models") if not fields.get(k)]
    if missing:
        raise ReportError(f"grid {text!r} lacks {', '.join(missing)}")
    models = tuple(m for m in fields["models"].split("+") if m)
    for name in (fields["experiment"], fields["benchmark"], *models):
        _check_name(name)
    if len(set(models)) != len(models):
        raise ReportError(f"grid {text!r} names a model twice")
    return GridSpec(fields["experiment"], fields["benchmark"], Path(fields["images"]), Path(fields["masks"]),
                    Path(fields["samples"]), models)


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ReportError(f"grid name {name!r} cannot be a folder name: use letters, digits, '_' and '-'")
    return name


# ---------------------------------------------------------------------------------------------
# Which images
# ---------------------------------------------------------------------------------------------

def pick_ids(hole_ratios: dict[str, float], k: int) -> list[str]:
    """``k`` ids spread evenly along the (hole ratio, id) order: smallest hole first, largest last."""
    order = sorted(hole_ratios, key=lambda i: (hole_ratios[i], i))
    if k >= len(order):
        return order
    if k == 1:
        return [order[len(order) // 2]]
    return [order[round(j * (len(order) - 1) / (k - 1))] for j in range(k)]


def _mask_ratios(masks: Path) -> tuple[dict[str, float], str]:
    path = masks / "manifest.csv"
    try:
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except FileNotFoundError:
        raise ReportError(f"mask manifest not found: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ReportError(f"unreadable mask manifest {path}: {str(exc).splitlines()[0]}") from exc
    if not {"id", "hole_ratio"} <= set(df.columns):
        raise ReportError(f"mask manifest {path} lacks the id / hole_ratio columns")
    ratios = pd.to_numeric(df["hole_ratio"], errors="coerce")
    if ratios.isna().any() or not ratios.between(0, 1).all():
        raise ReportError(f"mask manifest {path}: hole_ratio must be numbers in [0, 1]")
    for image_id in df["id"]:
        check_id(image_id)
    protocol = ""
    if {"protocol", "version"} <= set(df.columns) and len(df):
        protocol = f"{df['protocol'].iloc[0]} v{df['version'].iloc[0]}"
    return dict(zip(df["id"], ratios.astype(float))), protocol


def _meta(folder: Path) -> dict:
    path = folder / "meta.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"unreadable sample metadata {path}: {exc}") from exc
    return meta if isinstance(meta, dict) else {}


def _sample_sizes(truth: np.ndarray, meta: dict) -> set[tuple[int, int]]:
    """The (H, W) a model's sample may have: the truth's, or the model's own size when its folder says
    the benchmark was run (and scored) there (``sample.score_size: model``, ``eval/score_size.py``).

    Every cell becomes a thumbnail of the same side, so a 64-px sample of a 32-px benchmark sits beside
    its truth as the model wrote it; any other size is an error (a sample that was meant to be resized
    back and was not).
    """
    sizes = {truth.shape[:2]}
    resized = meta.get("resized")
    if isinstance(resized, dict) and resized.get("mode") == "model" and isinstance(resized.get("to"), int):
        sizes.add((resized["to"], resized["to"]))
    return sizes


# ---------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------

def thumbnail(rgb: np.ndarray, px: int = THUMB_PX) -> np.ndarray:
    """(H, W, 3) uint8 → at most ``px`` on the longer side: whole-factor nearest up, Lanczos down."""
    side = max(rgb.shape[:2])
    if side <= px:
        k = px // side
        return np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)
    h, w = rgb.shape[:2]
    size = (max(1, round(w * px / side)), max(1, round(h * px / side)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def masked_input(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The ground truth with the hole (``hole`` True) painted ``HOLE_RGB``: what the models were given."""
    out = rgb.copy()
    out[hole] = HOLE_RGB
    return out


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")  # no text chunks: same pixels, same bytes
    return path


def _read(path: Path, what: str) -> np.ndarray:
    try:
        return load_image(path)
    except DataError as exc:
        raise ReportError(f"{what}: {exc}") from None


def make_grid(spec: GridSpec, thumbs_dir: Path, n_images: int = GRID_IMAGES, px: int = THUMB_PX) -> Grid:
    """Pick the images, write every cell's thumbnail, return the grid (paths in column order)."""
    if n_images < 1:
        raise ReportError(f"a grid needs at least one image, got {n_images}")
    if not spec.models:
        raise ReportError(f"grid {spec.experiment}/{spec.benchmark} names no model")
    ratios, protocol = _mask_ratios(spec.masks)
    try:
        truth_ids = set(read_manifest(spec.images)["id"])
    except DataError as exc:
        raise ReportError(f"grid {spec.experiment}/{spec.benchmark}: {exc}") from None
    folders = {m: spec.samples / m / spec.benchmark for m in spec.models}
    candidates = {i: r for i, r in ratios.items()
                  if i in truth_ids and all((f / f"{i}.png").is_file() for f in folders.values())}
    if not candidates:
        raise ReportError(f"grid {spec.experiment}/{spec.benchmark}: no image id has a mask, a ground truth and a "
                          f"sample of every model ({', '.join(spec.models)}) under {spec.samples}")
    metas = {m: _meta(f) for m, f in folders.items()}
    columns = (Column(INPUT, "masked input", ""),
               *(Column(m, display_name(m), str(metas[m].get("weights_kind", ""))) for m in spec.models),
               Column(TRUTH, "ground truth", ""))
    out_dir = Path(thumbs_dir) / spec.experiment / spec.benchmark
    shutil.rmtree(out_dir, ignore_errors=True)  # only this grid's cells, so a changed pick leaves nothing stale
    rows, source_px = [], 0
    for image_id in pick_ids(candidates, n_images):
        truth = load_verified_image(spec.images / f"{image_id}.png")  # the pixels the data version names
        mask = _read(spec.masks / f"{image_id}.png", "mask")[:, :, 0] > 127  # 255 = hole
        if mask.shape != truth.shape[:2]:
            raise ReportError(f"mask {spec.masks / (image_id + '.png')} is {mask.shape[1]}x{mask.shape[0]}, "
                              f"its image {truth.shape[1]}x{truth.shape[0]}")
        source_px = max(source_px, *truth.shape[:2])
        cells = {INPUT: masked_input(truth, mask), TRUTH: truth}
        for m, folder in folders.items():
            sample = _read(folder / f"{image_id}.png", f"sample of {m}")
            if sample.shape[:2] not in _sample_sizes(truth, metas[m]):
                raise ReportError(f"sample {folder / (image_id + '.png')} is {sample.shape[1]}x{sample.shape[0]}, "
                                  f"the ground truth {truth.shape[1]}x{truth.shape[0]}")
            cells[m] = sample
        thumbs = tuple(_write_png(out_dir / image_id / f"{c.key}.png", thumbnail(cells[c.key], px)) for c in columns)
        rows.append(GridRow(image_id, candidates[image_id], thumbs))
    scales = {str(meta.get("scale", "")) for meta in metas.values()} - {""}
    return Grid(spec, columns, tuple(rows), source_px, "/".join(sorted(scales)), protocol)


def grid_note(grid: Grid) -> str:
    """The footnote: scale, weights kinds, and whether the grid may be compared with the paper's figure."""
    kinds = sorted({c.weights_kind for c in grid.columns if c.weights_kind})
    text = (f"{grid.scale or 'unknown'} scale · {grid.source_px} px images · masks {grid.protocol or 'stored set'}"
            f" · same images and masks for every model · weights: {' + '.join(kinds) or 'not stated'}")
    if grid.scale != "full" or "standin" in kinds:
        text += " — tiny models / stand-ins: not comparable to the paper's figure"
    elif "generated" in kinds:
        text += " — generated (random-valued) weights: not comparable to the paper's figure"
    return text


def montage(grid: Grid, gap: int = 4) -> np.ndarray:
    """Every thumbnail of the grid in one (H, W, 3) image, rows × columns, each centred in a ``gap``-wide
    white margin with a thin grey frame."""
    px = max(max(Image.open(t).size) for r in grid.rows for t in r.thumbs)
    nrows, ncols = len(grid.rows), len(grid.columns)
    out = np.full((nrows * (px + gap) + gap, ncols * (px + gap) + gap, 3), 255, np.uint8)
    for i, row in enumerate(grid.rows):
        for j, thumb in enumerate(row.thumbs):
            cell = np.asarray(Image.open(thumb).convert("RGB"))
            y = gap + i * (px + gap) + (px - cell.shape[0]) // 2
            x = gap + j * (px + gap) + (px - cell.shape[1]) // 2
            h, w = cell.shape[:2]
            out[y - 1 : y + h + 1, x - 1 : x + w + 1] = 190  # a 1-px frame in the gap: a white hole keeps its edge
            out[y : y + h, x : x + w] = cell
    return out


def plot_grid(grid: Grid, out_png: Path) -> Path:
    """The grid as one figure (for ``report.md`` and Snakemake's report): one image, labelled around it.

    One axes with one montage instead of an axes per cell: the figure is drawn in a fraction of the time.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: plots are files, never windows
    import matplotlib.pyplot as plt

    from moebius.report.plots import save_figure

    gap = 4
    image = montage(grid, gap)
    nrows, ncols = len(grid.rows), len(grid.columns)
    cell = (image.shape[1] - gap) / ncols  # one column's pitch: thumbnail + gap
    fig, ax = plt.subplots(figsize=(1.25 * ncols + 1.2, 1.25 * nrows + 1.0))
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    for j, col in enumerate(grid.columns):
        label = col.label + (f"\n({col.weights_kind})" if col.weights_kind else "")
        ax.text(gap / 2 + (j + 0.5) * cell, -gap, label, ha="center", va="bottom", fontsize=7)
    for i, row in enumerate(grid.rows):
        ax.text(-2 * gap, gap / 2 + (i + 0.5) * cell, f"{row.image_id}\nhole {100 * row.hole_ratio:.0f}%",
                ha="right", va="center", fontsize=6)
    bench = BENCHMARK_NAMES.get(grid.spec.benchmark, grid.spec.benchmark)
    fig.suptitle(f"Qualitative comparison — {bench} ({grid.spec.experiment})", fontsize=9)
    return save_figure(fig, out_png, grid_note(grid))


def figure_name(spec: GridSpec) -> str:
    return f"qualitative_{spec.experiment}_{spec.benchmark}.png"


def _grid_and_figure(spec: GridSpec, thumbs_dir: Path, plots_dir: Path, n_images: int) -> tuple[Grid, Path]:
    grid = make_grid(spec, thumbs_dir, n_images)
    return grid, plot_grid(grid, Path(plots_dir) / figure_name(spec))


def make_grids(specs: list[GridSpec], thumbs_dir: Path, plots_dir: Path,
               n_images: int = GRID_IMAGES, workers: int = 1) -> list[tuple[Grid, Path]]:
    """Every grid's thumbnails and figure (in ``workers`` processes); returns (grid, figure path) in the
    order given."""
    from moebius.report.plots import draw_all

    seen = set()
    for spec in specs:
        if (spec.experiment, spec.benchmark) in seen:
            raise ReportError(f"two grids for {spec.experiment}/{spec.benchmark}")
        seen.add((spec.experiment, spec.benchmark))
    return draw_all([(_grid_and_figure, (spec, thumbs_dir, plots_dir, n_images)) for spec in specs], workers)
