"""Synthetic result records with realistic fields, written to record files as the metric jobs would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results" / "reference"


def make_rec(model: str, benchmark: str, metric: str, value: float, experiment: str, *,
             weights_kind: str = "trained", n_images: int | None = 12, **settings: Any) -> dict[str, Any]:
    """One record shaped like ``moebius.records.make_record`` output at smoke scale."""
    return {
        "model": model, "benchmark": benchmark, "metric": metric, "value": float(value),
        "ci_low": None if n_images is None else float(value) * 0.9,
        "ci_high": None if n_images is None else float(value) * 1.1,
        "n_images": n_images, "scale": "smoke", "weights_kind": weights_kind, "seed": 0,
        "config_hash": "cfg0123abcd", "git_commit": "deadbeef" * 5, "data_version": f"{benchmark}@v1",
        "library_versions": {"python": "3.11.9", "numpy": "1.26.4", "torch": "2.3.1"},
        "settings": {"experiment": experiment, "sampler_start": "paper", "balance": "paper",
                     "flop_convention": "thop_macs", **settings},
        "created": "2025-01-01T00:00:00+00:00",
    }


def synthetic_records() -> dict[str, list[dict[str, Any]]]:
    """Record files (relative path → list of records) covering every experiment."""
    files: dict[str, list[dict[str, Any]]] = {}
    for model, kind in (("moebius", "trained"), ("pixelhacker", "trained"), ("flux_fill", "standin"),
                        ("telea", "trained")):
        for bench, fid in (("places2_small", 3.0), ("places2_test", 12.0), ("celebahq512", 6.0),
                           ("ffhq256", 9.0)):
            files[f"main/{model}/{bench}.json"] = [
                make_rec(model, bench, "fid", fid + len(model) / 10, "main", weights_kind=kind),
                make_rec(model, bench, "lpips", 0.2, "main", weights_kind=kind),
            ]
    for model in ("moebius", "pixelhacker"):
        files[f"efficiency/{model}/efficiency.json"] = [
            make_rec(model, "efficiency", "params", 2.26e8 if model == "moebius" else 8.62e8, "efficiency",
                     n_images=None, device="cpu"),
            make_rec(model, "efficiency", "gmacs_thop", 154.0, "efficiency", n_images=None, device="cpu"),
            make_rec(model, "efficiency", "ms_per_step", 52.02, "efficiency", n_images=None, device="cpu"),
            make_rec(model, "efficiency", "steps", 20, "efficiency", n_images=None, device="cpu"),
            make_rec(model, "efficiency", "total_s", 1.04, "efficiency", n_images=None, device="cpu"),
        ]
    for i in (1, 9):
        files[f"ablation_arch/exp{i}/places2_test.json"] = [
            make_rec(f"exp{i}", "places2_test", "fid", 40.0 + i, "ablation_arch"),
            make_rec(f"exp{i}", "places2_test", "lpips", 0.3, "ablation_arch"),
        ]
    for key in ("loss_c", "loss_cftp"):
        files[f"ablation_loss/{key}/places2_test.json"] = [
            make_rec(key, "places2_test", "fid", 50.0, "ablation_loss")]
    files["cfg_sweep/moebius/places2_test.json"] = [
        make_rec("moebius", "places2_test", "fid", 10.0 + abs(c - 2.5), "cfg_sweep", cfg_scale=c)
        for c in (1.5, 2.5, 3.5, 5.0)]
    files["cfg_sweep/moebius/celebahq512.json"] = [
        make_rec("moebius", "celebahq512", "fid", 5.0 + abs(c - 2.0), "cfg_sweep", cfg_scale=c)
        for c in (1.0, 2.0, 3.0)]
    files["ood/moebius/lvis.json"] = [make_rec("moebius", "lvis", "fid", 20.0, "ood"),
                                      make_rec("moebius", "lvis", "fid_bin", 22.0, "ood", hole_bin="40-50")]
    return files


def write_record_files(root: Path, files: dict[str, list[dict[str, Any]]]) -> list[Path]:
    paths = []
    for rel, recs in files.items():
        path = root / "results" / "records" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recs))
        paths.append(path)
    return paths
