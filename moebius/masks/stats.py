"""Hole-ratio statistics of mask protocols and stored sets, and their histogram plot.

Source: MASKS.md ("LaMa also reports scores per 10% hole-area bin"; "40–50% masked area" for
Places2 test). Hole ratio = share of pixels that are hole, in [0, 1]. Bins are [0, 0.1), ...,
[0.8, 0.9), [0.9, 1.0]; ``share_40_50`` is the closed window [0.4, 0.5] of ``places2_test``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moebius.atomic import atomic_open, atomic_path
from moebius.data.manifest import read_table
from moebius.errors import MaskError
from moebius.masks.generate import generate_mask, resize_nearest
from moebius.masks.registry import get_protocol, list_protocols
from moebius.masks.store import MANIFEST

BIN_COLUMNS = [f"bin_{10 * k:02d}_{10 * (k + 1):02d}" for k in range(10)]


def hole_ratios(protocol: str, n: int, seed: int, size: int | None = None,
                version: int | None = None) -> np.ndarray:
    """Hole ratios of the masks of ids ``stats-000000`` ... under (protocol, seed), optionally resized."""
    if n < 1:
        raise MaskError(f"need at least one mask for statistics, got n={n}")
    proto = get_protocol(protocol, version)
    ratios = np.empty(n)
    for i in range(n):
        hole = generate_mask(proto.name, f"stats-{i:06d}", seed, proto.version)
        ratios[i] = (hole if size is None else resize_nearest(hole, size)).mean()
    return ratios


def summarise_ratios(ratios: np.ndarray) -> dict[str, float]:
    """n, mean, quartiles, share per 10 % bin and share in [0.4, 0.5] of a vector of hole ratios."""
    r = np.asarray(ratios, dtype=float)
    if r.size == 0:
        raise MaskError("no hole ratios to summarise")
    # Bin k holds [k/10, (k+1)/10); a full mask (ratio 1.0) goes to the last bin.
    counts = np.bincount(np.minimum((r * 10).astype(int), 9), minlength=10)
    row: dict[str, float] = {
        "n": int(r.size),
        "mean": float(r.mean()),
        "median": float(np.median(r)),
        "q25": float(np.quantile(r, 0.25)),
        "q75": float(np.quantile(r, 0.75)),
    }
    row.update({col: float(c / r.size) for col, c in zip(BIN_COLUMNS, counts)})
    row["share_40_50"] = float(np.mean((r >= 0.4) & (r <= 0.5)))
    return row


def mask_stats(protocols: list[str], n: int, seed: int, size: int | None = None) -> pd.DataFrame:
    """One row per protocol: hole-ratio summary of ``n`` freshly drawn masks (native size unless ``size``)."""
    rows = []
    for name in protocols:
        proto = get_protocol(name)
        rows.append({"protocol": proto.name, "version": proto.version, "size": size or proto.size,
                     "seed": int(seed), **summarise_ratios(hole_ratios(proto.name, n, seed, size))})
    return pd.DataFrame(rows)


def set_stats(mask_dirs: list[Path]) -> pd.DataFrame:
    """One row per stored set: hole-ratio summary read from its manifest (no PNG is decoded)."""
    rows = []
    for mask_dir in map(Path, mask_dirs):
        path = mask_dir / MANIFEST
        m = read_table(path, MaskError, f"mask set has no manifest: {path}", f"unreadable mask manifest {path}",
                       dtype={"id": str})
        if "hole_ratio" not in m.columns:
            raise MaskError(f"{path}: no hole_ratio column")
        ratios = pd.to_numeric(m["hole_ratio"], errors="coerce")
        if m.empty or ratios.isna().any() or (ratios < 0).any() or (ratios > 1).any():
            raise MaskError(f"{path}: hole_ratio must hold numbers in [0, 1], one per mask")

        def first(col: str) -> object:
            return m[col].iloc[0] if col in m.columns and len(m) else ""

        rows.append({"mask_dir": str(mask_dir), "protocol": first("protocol"), "version": first("version"),
                     "size": first("size"), "seed": first("seed"),
                     **summarise_ratios(ratios.to_numpy(dtype=float))})
    return pd.DataFrame(rows)


def plot_hole_histograms(ratios_by_protocol: dict[str, np.ndarray], out_png: Path, footnote: str) -> None:
    """Small-multiple histograms (5 % bins) of hole area per protocol, written atomically as PNG."""
    if not ratios_by_protocol:
        raise MaskError("no protocols to plot")
    # Imported here, not at the top: `moebius.masks` is imported while Snakemake parses the DAG and
    # by every config check (the protocol registry), which must not pay for matplotlib.
    import matplotlib

    matplotlib.use("Agg")  # headless: plots are files, never windows
    import matplotlib.pyplot as plt

    names = list(ratios_by_protocol)
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.5 * nrows + 0.9), squeeze=False)
    edges = np.linspace(0, 100, 21)
    for ax, name in zip(axes.flat, names):
        r = 100 * np.asarray(ratios_by_protocol[name], dtype=float)
        ax.hist(r, bins=edges, weights=np.full(r.size, 100 / max(r.size, 1)), color="tab:blue")
        ax.axvspan(40, 50, color="tab:orange", alpha=0.2, lw=0, zorder=0)  # the places2_test window
        ax.set_title(f"{name} (n={r.size}, mean {r.mean():.1f} %)", fontsize=9)
        ax.set_xlim(0, 100)
    for k, ax in enumerate(axes.flat[: len(names)]):
        if k + ncols >= len(names):  # lowest panel of its column
            ax.set_xlabel("hole area (% of image)")
    for ax in axes[:, 0]:
        ax.set_ylabel("masks (% of n)")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Hole-area distribution per mask protocol (shaded: 40–50 %)")
    fig.text(0.01, 0.005, footnote, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    with atomic_path(out_png) as tmp:
        # Fixed metadata so the same numbers give the same bytes across matplotlib patch versions.
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)


def write_stats(mask_dirs: list[Path], n: int, seed: int, out_csv: Path, sets_csv: Path, plot: Path) -> None:
    """``moebius masks stats``: every protocol's summary of ``n`` fresh draws (``out_csv``), the stored
    sets' summaries (``sets_csv``) and the histogram (``plot``). Everything is computed before anything
    is written, so a broken set leaves no file behind."""
    protocols = list_protocols()
    ratios = {name: hole_ratios(name, n, seed) for name in protocols}
    fresh = pd.DataFrame(
        [{"protocol": name, "version": get_protocol(name).version, "size": get_protocol(name).size,
          "seed": seed, **summarise_ratios(r)} for name, r in ratios.items()]
    )
    stored = set_stats(list(mask_dirs))
    for frame, path in ((fresh, out_csv), (stored, sets_csv)):
        with atomic_open(path, "w", newline="") as fh:
            frame.to_csv(fh, index=False)
    versions = ", ".join(f"{name} v{get_protocol(name).version}" for name in protocols)
    plot_hole_histograms(ratios, plot, footnote=f"{n} masks per protocol at native size, seed {seed}; {versions}")
