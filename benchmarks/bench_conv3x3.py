"""The GEMM path of ``moebius.models.blocks.conv3x3`` against oneDNN's conv, per shape and batch (issue 15).

``conv3x3`` runs a 3×3 conv as im2col + one matmul when the conv is wide and the map small
(``_GEMM_MIN_CHANNELS``, ``_GEMM_MAX_PIXELS``); this measures where that pays. Shapes: every 3×3 conv
of the paper-size teacher on a map of at most 16×16 (found with forward hooks on the meta device),
and a few widths of the smoke models, at batch 1, 2, 8 and 16 (the CFG batch of smoke sampling is 16).
``gemm_ms`` forces the GEMM path (the thresholds are patched away for the call), ``conv_ms`` calls the
module; alternately, median of ``--repeats``; ``taken`` says which one ``conv3x3`` picks for the shape.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_conv3x3.py --threads 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from moebius.eval.profile import step_inputs
from moebius.models import blocks
from moebius.models.registry import build_model
from provenance import commit_label, write_csv  # benchmarks/provenance.py (this folder is on sys.path)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "conv3x3_cpu.csv"
SMOKE_SHAPES = [(64, 64, 8, 1), (128, 128, 8, 1), (256, 128, 16, 1)]  # (cin, cout, side, stride)


def teacher_shapes() -> Counter:
    """(cin, cout, side, stride) -> count of the paper-size teacher's 3×3 convs on maps of ≤ 16×16."""
    shapes: Counter = Counter()
    with torch.device("meta"):
        model = build_model("teacher", "paper")

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        side = args[0].shape[-1]
        if module.kernel_size == (3, 3) and module.groups == 1 and side <= 16:
            shapes[(module.in_channels, module.out_channels, side, module.stride[0])] += 1

    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.register_forward_hook(hook)
    with torch.no_grad():
        model(*step_inputs(model, 1, "meta"))
    return shapes


def gemm(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv3x3`` with its size thresholds lifted: always the GEMM path."""
    saved = blocks._GEMM_MAX_PIXELS, blocks._GEMM_MIN_CHANNELS
    blocks._GEMM_MAX_PIXELS, blocks._GEMM_MIN_CHANNELS = 1 << 30, 0
    try:
        return blocks.conv3x3(conv, x)
    finally:
        blocks._GEMM_MAX_PIXELS, blocks._GEMM_MIN_CHANNELS = saved


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 8, 16])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--append", action="store_true", help="keep the rows already in --out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [("teacher_paper", *s, n) for s, n in sorted(teacher_shapes().items())]
    shapes += [("smoke", *s, 1) for s in SMOKE_SHAPES]
    rows = []
    with torch.no_grad():
        for model, cin, cout, side, stride, count in shapes:
            for batch in args.batches:
                torch.manual_seed(0)
                conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
                x = torch.randn(batch, cin, side, side)
                diff = float((gemm(conv, x) - conv(x)).abs().max())  # also the warm-up of both
                g, c = [], []
                for _ in range(args.repeats):
                    g.append(timed(gemm, conv, x))
                    c.append(timed(conv, x))
                g_ms, c_ms = statistics.median(g), statistics.median(c)
                taken = blocks.takes_gemm(conv, x)
                rows.append({"model": model, "cin": cin, "cout": cout, "side": side, "stride": stride,
                             "count": count, "batch": batch, "gemm_ms": round(g_ms, 3), "conv_ms": round(c_ms, 3),
                             "ratio": round(g_ms / c_ms, 3), "taken": "gemm" if taken else "conv",
                             "max_abs_diff": f"{diff:.2e}", "threads": args.threads, "repeats": args.repeats,
                             "load1": round(os.getloadavg()[0], 2), "date": dt.date.today().isoformat(),
                             "commit": commit_label(), "torch_version": torch.__version__})
                print(f"{model} {cin}->{cout} {side}px s{stride} b{batch}: gemm {g_ms:.2f} ms, conv {c_ms:.2f} ms,"
                      f" ratio {g_ms / c_ms:.2f} (conv3x3 takes {rows[-1]['taken']})", flush=True)
    write_csv(pd.DataFrame(rows), args.out, text_columns=("commit",), append=args.append)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
