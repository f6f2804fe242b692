"""Masks per second per protocol on one CPU core: drawing only (no PNG encoding, no disk).

Usage: python benchmarks/bench_masks.py [--n 2000] [--out benchmarks/results/masks_per_second.csv]
[--protocols mat_large_512 ...]. Each mask is ``moebius.masks.generate_mask`` with its own seeded
generator, exactly what ``write_mask_set`` draws; threads are pinned to 1 (OpenCV, BLAS/OpenMP) and
the process to one core, so the figure is per core and does not depend on what else runs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy / cv2 load their thread pools

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from moebius.atomic import atomic_open  # noqa: E402
from moebius.masks import generate_mask, list_protocols  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "masks_per_second.csv"


def machine() -> str:
    """CPU model and core count, for reading the figures later."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores, {platform.system()} {platform.machine()})"


def bench(protocol: str, n: int, seed: int) -> float:
    """Seconds to draw ``n`` masks of ``protocol`` (ids bench-0 ... bench-{n-1})."""
    generate_mask(protocol, "warm-up", seed)  # imports, first-call allocations
    start = time.perf_counter()
    for i in range(n):
        generate_mask(protocol, f"bench-{i}", seed)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="masks per protocol (default: 2000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"CSV to write (default: {DEFAULT_OUT})")
    parser.add_argument("--protocols", nargs="+", default=list_protocols(), choices=list_protocols(),
                        metavar="PROTOCOL", help="protocols to time (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="mask seed (default: 0)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be >= 1")

    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rows = []
    for protocol in args.protocols:
        seconds = bench(protocol, args.n, args.seed)
        rows.append({"protocol": protocol, "n": args.n, "seconds": round(seconds, 3),
                     "masks_per_second": round(args.n / seconds, 1), "cv2_version": cv2.__version__,
                     "numpy_version": np.__version__, "machine": machine()})
        print(f"{protocol:18s} {args.n} masks in {seconds:7.2f} s = {args.n / seconds:7.1f} masks/s",
              flush=True)
    with atomic_open(args.out, "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(rows).to_csv(fh, index=False, lineterminator="\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
