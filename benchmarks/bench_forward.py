"""This tree's U-Net forward against a baseline commit's, alternately in one process (issue 15, goal 1).

The baseline's ``moebius`` package is extracted from git (``git archive <ref> moebius``) into a temp dir
and imported under its own name with this tree's ``moebius`` modules set aside for the moment; its
classes keep their own module globals afterwards, so both versions live side by side. The baseline
model is built, then given the new model's tensors themselves (keys and shapes are the same by
contract; shared storage, so weight placement in memory favours neither), and both run on the same
input: ``max_abs_diff`` is over the predicted noise, ``block_max_rel_diff`` over every block output
relative to its largest magnitude.

Timing on a shared machine: threads pinned (``torch.set_num_threads``), one warm-up each, then
``--repeats`` rounds that alternate which version runs first, and the median of each; the 1-minute
load average is recorded with every row, and process CPU time beside wall time (``cpu_ratio``).
``--dtype bf16`` times the new model under CPU bf16 autocast against the baseline in fp32 (the diff is
then bf16's error, not an equivalence check). ``--channels-last`` gives the new model's 2-D conv weights
and its input the channels-last memory format (same numbers up to rounding). With ``--baseline HEAD``
either compares one tree with itself: the option's own effect.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_forward.py --models student --threads 1 2
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_forward.py --models student --threads 1 \
        --dtype bf16 --baseline HEAD --repeats 3 --append
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import functools
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from moebius.models.lcg import lcg_ids
from moebius.models.registry import build_model
from provenance import commit_label, git, write_csv  # benchmarks/provenance.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "forward_cpu.csv"
BASELINE = "65e4804"  # the commit issue 15 measures against
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def import_baseline(ref: str, workdir: Path) -> Callable[[str, str], torch.nn.Module]:
    """``build_model`` of the ``moebius`` package as it was at ``ref``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "moebius"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(workdir, filter="data")
    ours = {k: m for k, m in sys.modules.items() if k == "moebius" or k.startswith("moebius.")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, str(workdir))
    try:
        registry = importlib.import_module("moebius.models.registry")
    finally:
        sys.path.remove(str(workdir))
        for k in [k for k in sys.modules if k == "moebius" or k.startswith("moebius.")]:
            del sys.modules[k]  # the baseline's modules stay alive through the objects that use them
        sys.modules.update(ours)
    if str(workdir) not in getattr(registry, "__file__", ""):
        raise RuntimeError(f"baseline import picked up {registry.__file__}, not the extracted {ref}")
    return registry.build_model


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every 2-D conv weight in channels-last memory format (in place; values unchanged).

    ``model.to(memory_format=...)`` cannot be used: it refuses the Local-λ positional Conv3d (5-D).
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return model


def forward(model: torch.nn.Module, inputs: tuple, dtype: torch.dtype | None) -> list[torch.Tensor]:
    autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        out = model(*inputs)
    return [out.sample.float(), *(b.float() for b in out.block_outputs)]


def diffs(old: list[torch.Tensor], new: list[torch.Tensor]) -> tuple[float, float]:
    """Max |old - new| of the predicted noise, and the largest block output's max |diff| / max |old|.

    Block outputs reach magnitudes in the hundreds, where fp32's own spacing is ~1e-5: an absolute
    bound means nothing there, a relative one does.
    """
    sample = float((old[0] - new[0]).abs().max())
    blocks = max(float((x - y).abs().max() / x.abs().max().clamp_min(1e-30)) for x, y in zip(old[1:], new[1:], strict=True))
    return sample, blocks


def time_pair(old: Callable[[], object], new: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median wall and process-CPU ms of ``old`` and ``new``, alternating which runs first; one warm-up each.

    CPU time leaves out the time the process waits for a core, the larger part of the noise when
    other jobs share the machine (it still counts their effect on caches and memory bandwidth).
    """
    old(), new()
    times: dict[str, list[float]] = {"old_ms": [], "new_ms": [], "old_cpu_ms": [], "new_cpu_ms": []}
    for r in range(repeats):
        order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        for name, fn in order:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[f"{name}_ms"].append((time.perf_counter() - t0) * 1e3)
            times[f"{name}_cpu_ms"].append((time.process_time() - c0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def run(models: list[str], preset: str, threads: list[int], batch: int, repeats: int, dtype: str, ref: str,
        label: str, memory_format: str = "contiguous") -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory(prefix="moebius-baseline-") as tmp:
        build_old = import_baseline(ref, Path(tmp))
        for name in models:
            torch.manual_seed(0)
            new = build_model(name, preset).eval()
            old = build_old(name, preset).eval()
            # assign: the old model holds the new one's very tensors, so neither gains from where its
            # weights happen to sit in memory (identical code in two copies differed by up to 10% here)
            old.load_state_dict(new.state_dict(), strict=True, assign=True)
            g = torch.Generator().manual_seed(0)
            side = new.latent_size
            inputs = (torch.randn(batch, 9, side, side, generator=g), torch.tensor([500] * batch), lcg_ids(batch, True))
            new_inputs = inputs
            if memory_format == "channels_last":
                # after the weights were shared: the old model keeps NCHW tensors of the same values
                new = channels_last(copy.deepcopy(new))
                new_inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])
            for n in threads:
                torch.set_num_threads(n)
                diff, block_rel = diffs(forward(old, inputs, None), forward(new, new_inputs, DTYPES[dtype]))
                ms = time_pair(functools.partial(forward, old, inputs, None),
                               functools.partial(forward, new, new_inputs, DTYPES[dtype]), repeats)
                row = {
                    "model": name, "preset": preset, "batch": batch, "dtype": dtype, "memory_format": memory_format,
                    "threads": n,
                    "old_ms": round(ms["old_ms"], 1), "new_ms": round(ms["new_ms"], 1),
                    "ratio": round(ms["new_ms"] / ms["old_ms"], 3),
                    "old_cpu_ms": round(ms["old_cpu_ms"], 1), "new_cpu_ms": round(ms["new_cpu_ms"], 1),
                    "cpu_ratio": round(ms["new_cpu_ms"] / ms["old_cpu_ms"], 3),
                    "max_abs_diff": float(f"{diff:.3g}"), "block_max_rel_diff": float(f"{block_rel:.3g}"),
                    "repeats": repeats, "load1": round(os.getloadavg()[0], 2),
                    "baseline": git("rev-parse", "--short", ref), "label": label, "date": dt.date.today().isoformat(), "commit": commit_label("benchmarks/bench_forward.py"),
                    "torch_version": torch.__version__,
                }
                rows.append(row)
                print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            del new, old
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["student", "teacher"])
    ap.add_argument("--preset", default="paper", choices=["paper", "smoke"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="the new model's (autocast) dtype")
    ap.add_argument("--channels-last", action="store_true", help="the new model's conv weights and input channels-last")
    ap.add_argument("--baseline", default=BASELINE, help="git ref of the old model code")
    ap.add_argument("--label", default="", help="what this run measures (e.g. the change under test)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--append", action="store_true", help="add the rows to --out instead of replacing it")
    args = ap.parse_args(argv)

    df = run(args.models, args.preset, args.threads, args.batch, args.repeats, args.dtype, args.baseline, args.label,
             "channels_last" if args.channels_last else "contiguous")
    write_csv(df, args.out, ("baseline", "label", "commit"), append=args.append)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
