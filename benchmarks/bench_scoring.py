"""Scoring throughput: the project's FID + LPIPS against plain torch-fidelity + lpips calls (issue 15, item 4).

Both sides score the same generated image set (``--n`` pairs of ``--size`` px PNGs: a random "real"
set and a noisy copy of it as the "fake" one) with the same networks: the project's stand-in
InceptionV3 (torch-fidelity's own module, fixed-seed init, ``moebius.eval.metrics``) and LPIPS alex
with the seeded random backbone, as the tests use them (nothing is downloaded; ``TORCH_HOME`` and
``MOEBIUS_WEIGHTS_DIR`` point at empty folders). Timed, each once after a warm-up of its own on 4 other pairs:

* ``ours_fid``: ``compute_fid`` (what ``moebius score`` runs: batched Inception, FID from the features);
* ``plain_fid``: ``torch_fidelity.calculate_metrics(input1=real, input2=fake, fid=True)`` with the same
  registered extractor and weights, no cache;
* ``ours_lpips``: ``compute_lpips`` (batched pairs);
* ``plain_lpips``: the ``lpips`` README loop, one ``lpips.im2tensor(lpips.load_image(...))`` pair per call;
* ``ours_score``: the whole ``evaluate_samples`` (FID, LPIPS, per-hole-ratio bins and the half-sample /
  bootstrap intervals of ``--bootstrap`` resamples), the function ``moebius score`` calls, with an
  empty feature cache (in a run, every model after the first on a benchmark reads the real features).

The values must agree (FID relative 1e-4: torch-fidelity's eigvals route vs our exact SVD; mean LPIPS
1e-5), else the run fails. Rows (seconds, images/s, ratios, load average) go to
``benchmarks/results/scoring_cpu.csv``.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_scoring.py --n 64 --size 256 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from provenance import commit_label, write_csv  # benchmarks/provenance.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "scoring_cpu.csv"


def make_sets(root: Path, n: int, size: int) -> dict[str, Path]:
    """``real/`` (with manifest.csv), ``fake/`` (noisy copies, with meta.json) and ``masks/manifest.csv``."""
    from moebius.data.manifest import row_for_png, write_manifest

    real, fake, masks = root / "real", root / "fake", root / "masks"
    for folder in (real, fake, masks):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        # smooth random images (upsampled noise), so that Inception sees structure, not white noise
        small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.int64)
        noisy = np.clip(img + rng.integers(-40, 41, img.shape), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(real / f"{i:04d}.png")
        Image.fromarray(noisy.astype(np.uint8)).save(fake / f"{i:04d}.png")
        rows.append(row_for_png(f"{i:04d}", "bench", (real / f"{i:04d}.png").read_bytes(), size, size))
    write_manifest(real, rows)
    (fake / "meta.json").write_text(json.dumps({"weights_kind": "trained", "model": "bench", "benchmark": "bench"}))
    ratios = rng.uniform(0.05, 0.6, n)
    pd.DataFrame({"id": [f"{i:04d}" for i in range(n)], "seed": 0, "hole_ratio": ratios}).to_csv(
        masks / "manifest.csv", index=False)
    return {"real": real, "fake": fake, "masks": masks}


def timed(fn):
    """(result, wall seconds, process CPU seconds) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def run(args: argparse.Namespace, root: Path) -> list[dict[str, object]]:
    import lpips
    import torch_fidelity

    from moebius.config import load_config
    from moebius.eval import metrics as M

    bs = args.batch_size
    base_cfg = load_config(REPO / "config" / "smoke.yaml")
    base_cfg = dataclasses.replace(base_cfg, eval=dataclasses.replace(base_cfg.eval, bootstrap=args.bootstrap,
                                                                      batch_size=bs))
    calls = iter(range(1_000_000))

    def files(sets: dict[str, Path]) -> tuple[list[Path], list[Path]]:
        return sorted(sets["real"].glob("*.png")), sorted(sets["fake"].glob("*.png"))

    def ours_fid(sets):
        real, fake = files(sets)
        return M.compute_fid(real, fake, allow_standin=True, batch_size=bs, device="cpu").value

    def plain_fid(sets):
        weights, _ = M.inception_weights_file(True)  # the same stand-in, registered with torch-fidelity
        out = torch_fidelity.calculate_metrics(
            input1=str(sets["real"]), input2=str(sets["fake"]), fid=True, feature_extractor=M.TORCH_FIDELITY_NAME,
            feature_extractor_weights_path=weights, cuda=False, batch_size=bs, save_cpu_ram=True, cache=False,
            verbose=False)
        return out["frechet_inception_distance"]

    def ours_lpips(sets):
        real, fake = files(sets)
        return M.compute_lpips(list(zip(fake, real)), "alex", "minus_one_one", allow_standin=True, batch_size=bs,
                               device="cpu").value

    def plain_lpips(sets):
        real, fake = files(sets)
        torch.manual_seed(0)  # build_lpips's stand-in: seed 0, then lpips' own constructor
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
        scores = []
        with torch.no_grad():
            for a, b in zip(fake, real):  # lpips' README / lpips_2dirs.py: one pair per call, [-1, 1]
                scores.append(float(model(lpips.im2tensor(lpips.load_image(str(a))),
                                          lpips.im2tensor(lpips.load_image(str(b))))))
        return float(np.mean(scores))

    def ours_score(sets):
        # a fresh results folder per call: the real set's Inception features are computed, not read from
        # the cache an earlier call left (in a run every model after the first on a benchmark reads them)
        results = root / f"results{next(calls)}"
        cfg = dataclasses.replace(base_cfg, paths=dataclasses.replace(base_cfg.paths, results=str(results)))
        recs = M.evaluate_samples(cfg, sets["fake"], sets["real"], sets["masks"], model="bench", benchmark="bench",
                                  device="cpu")
        return next(r["value"] for r in recs if r["metric"] == "fid")

    jobs = {"ours_fid": ours_fid, "plain_fid": plain_fid, "ours_lpips": ours_lpips, "plain_lpips": plain_lpips,
            "ours_score": ours_score}
    warm = make_sets(root / "warm", 4, args.size)
    sets = make_sets(root / "sets", args.n, args.size)
    results: dict[str, tuple[float, float, float]] = {}
    for name in args.jobs:
        jobs[name](warm)  # warm-up on 4 pairs: first-call costs (imports, allocator) out of the timing
        results[name] = timed(functools.partial(jobs[name], sets))
        print(f"{name}: value {results[name][0]:.6g}, {results[name][1]:.2f} s wall, {results[name][2]:.2f} s CPU",
              flush=True)

    checks = {"fid": ("ours_fid", "plain_fid", 1e-4), "lpips": ("ours_lpips", "plain_lpips", 1e-5)}
    for metric, (a, b, tol) in checks.items():
        if a in results and b in results:
            va, vb = results[a][0], results[b][0]
            if abs(va - vb) > tol * max(abs(vb), 1e-12):
                raise SystemExit(f"bench_scoring: {metric} differs: ours {va!r}, plain {vb!r} (tolerance {tol:g})")

    common = {"n_images": args.n, "size": args.size, "threads": args.threads, "batch_size": bs,
              "bootstrap": args.bootstrap, "weights": "standin", "load1": round(os.getloadavg()[0], 2),
              "label": args.label, "date": dt.date.today().isoformat(), "commit": commit_label("benchmarks/bench_scoring.py"),
              "torch_version": torch.__version__}
    rows = []
    for name, (value, wall, cpu) in results.items():
        metric = name.split("_", 1)[1]
        other = {"ours_fid": "plain_fid", "ours_lpips": "plain_lpips"}.get(name)
        row = {"job": name, "metric": metric, "value": float(f"{value:.6g}"), "wall_s": round(wall, 2),
               "cpu_s": round(cpu, 2), "images_per_s": round(args.n / wall, 2),
               "ratio_vs_plain": round(wall / results[other][1], 3) if other in results else None,
               "cpu_ratio_vs_plain": round(cpu / results[other][2], 3) if other in results else None, **common}
        rows.append(row)
        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="image pairs")
    ap.add_argument("--size", type=int, default=256, help="image side (px)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (pinned)")
    ap.add_argument("--batch-size", type=int, default=32, help="eval.batch_size of our side and torch-fidelity's")
    ap.add_argument("--bootstrap", type=int, default=200, help="eval.bootstrap of ours_score (smoke: 200)")
    ap.add_argument("--jobs", nargs="+", default=["ours_fid", "plain_fid", "ours_lpips", "plain_lpips", "ours_score"],
                    choices=["ours_fid", "plain_fid", "ours_lpips", "plain_lpips", "ours_score"])
    ap.add_argument("--label", default="", help="what this run measures")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="moebius-bench-scoring-") as tmp:
        root = Path(tmp)
        # offline and reproducible: no real weights are found, none downloaded; stand-ins on both sides
        os.environ["TORCH_HOME"] = str(root / "torch_home")
        os.environ["MOEBIUS_WEIGHTS_DIR"] = str(root / "weights")
        rows = run(args, root)

    df = pd.DataFrame(rows)
    write_csv(df, args.out, ("commit", "label", "date"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
