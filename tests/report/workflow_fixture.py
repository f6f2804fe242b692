"""Every input of the workflow's `report` rule, as tiny files, so the rule (and `snakemake --report`) can run
without the rest of the DAG.

The list of inputs comes from Snakemake itself (a dry run of ``results/index.html``), so the fixture
follows the rule file; each path is then written by its pattern: records shaped like the metric jobs',
run folders with a training-metrics CSV, the mask statistics, benchmark images, mask sets and sample
folders for every model of the grids.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from grid_fixture import write_benchmark, write_masks, write_samples
from report_records import make_rec

from moebius.config import load_config

N_IMAGES = 4  # per benchmark: enough for two hole-ratio bins of two images
COPIED = ("Snakefile", "workflow", "config", "results/reference")
STANDIN_MODELS = {"flux_fill", "sd35_inpaint"}


def make_project(root: Path, dest: Path) -> Path:
    """A copy of the workflow's files (not its outputs) to run in isolation."""
    for rel in COPIED:
        src, dst = root / rel, dest / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return dest


def report_inputs(project: Path, snakemake: str, env: dict[str, str]) -> list[str]:
    """The input files of the `report` job, from Snakemake's dry run of the whole DAG."""
    out = subprocess.run([snakemake, "-n", "--nolock", "results/index.html"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    block = out.stdout.split("rule report:", 1)[1]
    line = next(line for line in block.splitlines() if line.strip().startswith("input:"))
    return [p.strip() for p in line.split(":", 1)[1].split(",") if p.strip()]


def _records(path: str, cfg: Any) -> list[dict[str, Any]]:
    parts = Path(path).with_suffix("").parts  # results/records/[start_<start>/]<experiment>/...
    extra: dict[str, Any] = {}
    if parts[2].startswith("start_"):  # the other sampler start's records (eval.sampler_starts)
        extra = {"sampler_start": parts[2].removeprefix("start_"), "variant": f"start={parts[2].removeprefix('start_')}"}
        parts = parts[:2] + parts[3:]
    exp = parts[2]
    if exp in ("main", "ood"):
        model = parts[3]
        kind = "standin" if model in STANDIN_MODELS else "trained"
        recs = []
        for b, bench in sorted(cfg.benchmarks.items()):
            if bench.ood != (exp == "ood"):
                continue
            base = 5.0 + len(model) / 10
            recs += [make_rec(model, b, "fid", base, exp, weights_kind=kind, n_images=N_IMAGES, **extra),
                     make_rec(model, b, "lpips", 0.2, exp, weights_kind=kind, n_images=N_IMAGES, **extra)]
            for label, scale in (("0.0-0.1", 0.8), ("0.4-0.5", 1.3)):
                recs += [make_rec(model, b, "fid_bin", base * scale, exp, weights_kind=kind, n_images=2, hole_bin=label,
                                  **extra),
                         make_rec(model, b, "lpips_bin", 0.2 * scale, exp, weights_kind=kind, n_images=2,
                                  hole_bin=label, **extra)]
        return recs
    if exp in ("ablation_arch", "ablation_loss"):
        model, bench = parts[3], parts[4]
        return [make_rec(model, bench, "fid", 40.0, exp, n_images=N_IMAGES),
                make_rec(model, bench, "lpips", 0.3, exp, n_images=N_IMAGES)]
    if exp == "cfg_sweep":
        bench = parts[4]
        return [make_rec("moebius", bench, m, v + abs(g - 2.5), exp, n_images=N_IMAGES, cfg_scale=g)
                for g in cfg.eval.cfg_sweep[bench] for m, v in (("fid", 10.0), ("lpips", 0.2))]
    if exp == "efficiency":
        models = [f"exp{i}" for i in cfg.ablation.experiments] if parts[3] == "variants" else [parts[3]]
        recs = []
        for m in models:
            recs += [make_rec(m, "efficiency", "params", 2.26e8, exp, n_images=None, device="cpu"),
                     make_rec(m, "efficiency", "gmacs_thop", 154.0, exp, n_images=None, device="cpu")]
            if parts[3] != "variants":
                recs += [make_rec(m, "efficiency", "ms_per_step", 52.0, exp, n_images=None, device="cpu"),
                         make_rec(m, "efficiency", "steps", 20, exp, n_images=None, device="cpu")]
        return recs
    raise AssertionError(f"no fixture for record file {path}")


def _mask_stats() -> pd.DataFrame:
    shares = {f"bin_{10 * k:02d}_{10 * (k + 1):02d}": (0.5 if k in (4, 5) else 0.0) for k in range(10)}
    return pd.DataFrame([{"protocol": p, "version": 1, "size": 64, "seed": 0, "n": 20, "mean": 0.45, **shares}
                         for p in ("places2_test", "mat_large_512")])


def write_inputs(project: Path, inputs: list[str], config_file: str = "config/smoke.yaml") -> None:
    """Write every file of ``inputs`` (paths relative to ``project``) by its pattern."""
    cfg = load_config(project / config_file)
    models = list(cfg.eval.models)
    for rel in inputs:
        path = project / rel
        if path.exists():
            continue  # results/reference: copied with the workflow
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith("results/records/"):
            path.write_text(json.dumps(_records(rel, cfg)))
        elif rel.endswith("/run.json"):
            path.write_text(json.dumps({"steps": 10}))
            steps = np.arange(1, 11)
            pd.DataFrame({"step": steps, "loss_total": 1.0 / steps, "lr": 1e-3}).to_csv(
                path.parent / "train_metrics.csv", index=False)
        elif rel.endswith("hole_ratio_stats.csv"):
            _mask_stats().to_csv(path, index=False)
        elif re.match(r"data/benchmarks/[^/]+/manifest\.csv$", rel):
            bench = Path(rel).parent.name
            write_benchmark(path.parent, N_IMAGES, cfg.benchmarks[bench].size)
        elif rel.startswith("masks/"):
            bench = Path(rel).parent.name
            protocol, version = Path(rel).parts[1], int(Path(rel).parts[2].removeprefix("v"))
            write_masks(path.parent, N_IMAGES, cfg.benchmarks[bench].size, protocol, version)
        elif rel.endswith("/suite.json"):
            exp, model = Path(rel).parts[2], Path(rel).parts[3]
            for b, bench in sorted(cfg.benchmarks.items()):
                if bench.ood == (exp == "ood"):
                    write_samples(path.parent / b, N_IMAGES, bench.size, (40 * (1 + models.index(model))) % 250 + 5, model,
                                  "standin" if model in STANDIN_MODELS else "trained")
            path.write_text(json.dumps({"model": model}))
        else:
            raise AssertionError(f"no fixture for report input {rel}")
