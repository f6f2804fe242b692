"""Student vs teacher latency per denoising step, in one run on one machine (paper Tab. 1 / Sec. 4.3).

The paper reports 26.01 ms (Moebius) vs 46.89 ms (PixelHacker) per step at 512x512 on an L40S, a
1.80x speed-up. Absolute milliseconds depend on the machine; the ratio is what this benchmark checks.
Both models run back to back here, at batch 1 and at the CFG batch 2, for each preset asked for:
``paper`` (the real 226M / 862M architectures, 64x64 latents) and ``smoke`` (the tiny CPU presets).
Weights are random init: latency does not depend on their values.

    .venv/bin/python benchmarks/bench_latency.py --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import pandas as pd
import torch

from moebius.atomic import atomic_open
from moebius.device import resolve_device
from moebius.diffusion.latents import vae_factor
from moebius.eval.profile import build_on, step_inputs, time_step
from moebius.models.vae import vae_config

PAPER_MS = {"student": 26.01, "teacher": 46.89}  # L40S, batch 1 per the paper's Tab. 1
MODELS = {"student": "moebius", "teacher": "pixelhacker"}


def run(presets: list[str], threads: int, warmup: int, repeats: int, device: str, batches: list[int]) -> pd.DataFrame:
    dev = resolve_device(device)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.processor() or 'x86_64'})"
    rows = []
    for preset in presets:
        for arch in ("student", "teacher"):
            model = build_on(arch, preset, "cpu").to(dev).eval()
            for batch in batches:
                inputs = step_inputs(model, batch, dev, seed=0)
                stats = time_step(model, inputs, warmup, repeats, dev, threads=threads if dev.type == "cpu" else None)
                rows.append({
                    "model": MODELS[arch], "preset": preset, "resolution": model.latent_size * vae_factor(vae_config(preset)),
                    "threads": threads if dev.type == "cpu" else None, "batch": batch,
                    "median_ms": round(stats["median_ms"], 3), "p10": round(stats["p10"], 3),
                    "p90": round(stats["p90"], 3), "device": device_name, "torch_version": torch.__version__,
                    "warmup": warmup, "repeats": repeats,
                })
                print(f"{preset:5s} {MODELS[arch]:11s} batch {batch}: median {stats['median_ms']:.1f} ms "
                      f"(p10 {stats['p10']:.1f}, p90 {stats['p90']:.1f})", flush=True)
            del model
    return pd.DataFrame(rows)


def ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Teacher / student median ms per (preset, batch): the paper's 46.89 / 26.01 = 1.80."""
    wide = df.pivot_table(index=["preset", "batch"], columns="model", values="median_ms")
    wide["ratio_teacher_over_student"] = (wide["pixelhacker"] / wide["moebius"]).round(3)
    return wide.reset_index()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["paper", "smoke"], choices=["paper", "smoke"])
    ap.add_argument("--threads", type=int, default=1, help="CPU threads, pinned (ENVIRONMENT.md: use 1)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 2], help="1 = one forward, 2 = the CFG batch")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/latency_cpu.csv"))
    args = ap.parse_args(argv)

    df = run(args.presets, args.threads, args.warmup, args.repeats, args.device, args.batches)
    with atomic_open(args.out, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)
    summary = ratios(df)
    print(summary.to_string(index=False))
    print(f"paper (L40S, batch 1): {PAPER_MS['teacher']} / {PAPER_MS['student']} = "
          f"{PAPER_MS['teacher'] / PAPER_MS['student']:.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
