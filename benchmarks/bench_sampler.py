"""Student sampler throughput: ms per denoising step and images per second, on CPU or CUDA (issue 15).

Runs ``moebius.diffusion.sampler.inpaint_batch`` — the sampler every evaluation uses (DDIM, LCG
classifier-free guidance with the CFG batch [uncond, cond], VAE encode/decode, paste-back) — on
random images and masks. The denoiser is wrapped so that each of its calls is timed: ``ms_per_step``
is the median model call (one step = one CFG-batch forward; ``cpu_ms_per_step`` its process CPU time,
which leaves out waiting for a core on a shared machine), ``images_per_s`` the whole pipeline.

Opt-in variants, each checked against the fp32 eager model on the same input before it is timed
(the relative L2 error of one step's guided-batch ε must stay under ``TOLERANCE``; the whole sample's
largest pixel difference is reported too, without a bound, since 20 steps compound any change):

    --compile             sample.compile: torch.compile of the denoiser     tolerance 1e-4 (fp32)
    --dtype bf16 | fp16   sample.precision: the denoiser under autocast     tolerance 1e-1 | 5e-2
    --channels-last       the denoiser's conv weights and input channels-last (benchmark only)

``--compile`` and ``--dtype`` go through the package's own path (``sampling_denoiser``, what
``sample.compile`` / ``sample.precision`` select; the VAE and the DDIM update stay fp32).

Weights are random (latency does not depend on them) unless ``--weights`` names a student checkpoint.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_sampler.py --preset smoke --steps 4
    python benchmarks/bench_sampler.py --device cuda --batch 4 --dtype bf16 --compile   # on a GPU
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from moebius.config import SampleConfig
from moebius.diffusion.sampler import inpaint_batch, sampling_denoiser
from moebius.models.lcg import cfg_ids
from moebius.models.registry import build_model
from moebius.models.vae import build_vae
from provenance import commit_label, write_csv  # benchmarks/provenance.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
DTYPES = ("bf16", "fp16", "fp32")  # sample.precision
# Relative L2 of one step's ε against fp32 eager. Sanity bounds that catch a broken path (a layout or
# overflow bug is off by ~1), not quality claims: a random-init student in bf16 is off by ~5e-2.
TOLERANCE = {"fp32": 1e-4, "bf16": 1e-1, "fp16": 5e-2}


class TimedDenoiser(torch.nn.Module):
    """Calls ``fn`` (the model, or its compiled form) and records each call's wall time in ms."""

    def __init__(self, model: torch.nn.Module, fn, device: torch.device) -> None:
        super().__init__()
        self.model = model  # inpaint_batch reads parameters() (device, dtype) from here
        self.latent_size = model.latent_size
        self._fn = [fn]  # a list, so a compiled wrapper is not registered as a second submodule
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.times_ms: list[float] = []
        self.cpu_ms: list[float] = []  # process CPU time: leaves out waiting for a core on a shared machine

    def forward(self, *args):
        self._sync()
        t0, c0 = time.perf_counter(), time.process_time()
        out = self._fn[0](*args)
        self._sync()
        self.times_ms.append((time.perf_counter() - t0) * 1e3)
        self.cpu_ms.append((time.process_time() - c0) * 1e3)
        return out


def channels_last(model: torch.nn.Module, fn):
    """``fn`` with the model's 2-D conv weights (in place) and its latent input in channels-last format."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):  # model.to(memory_format=) refuses the 5-D Local-λ Conv3d
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return lambda x, *rest: fn(x.contiguous(memory_format=torch.channels_last), *rest)


def step_error(model: torch.nn.Module, fn, device: torch.device) -> float:
    """Relative L2 error of one CFG-batch ε of ``fn`` against the fp32 eager ``model``."""
    side = model.latent_size
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, side, side, generator=g).to(device)
    t = torch.tensor([500, 500], device=device)
    ids = cfg_ids(1, device=device)
    with torch.inference_mode():
        ref = model(x, t, ids).sample.float()
        got = fn(x, t, ids).sample.float()
    return float((got - ref).norm() / ref.norm().clamp_min(1e-30))


def inputs(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    masks = torch.zeros(batch, 1, size, size)
    masks[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0  # a centred hole
    return images, masks


def run(args: argparse.Namespace) -> dict[str, object]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_sampler: --device cuda but torch.cuda.is_available() is False")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("student", args.preset).eval()
    if args.weights is not None:
        from moebius.models.checkpoint import load_weights

        load_weights(model, args.weights)
    model.to(device)
    vae = build_vae(args.preset).eval().to(device)
    fn = sampling_denoiser(model, SampleConfig(precision=args.dtype, compile=args.compile))
    if args.channels_last:
        ref_model = copy.deepcopy(model)  # the reference stays NCHW
        fn = channels_last(model, fn)
    else:
        ref_model = model
    err = step_error(ref_model, fn, device)
    tol = TOLERANCE[args.dtype]
    print(f"one step's eps vs fp32 eager: relative L2 {err:.3g} (tolerance {tol:g})", flush=True)
    if err > tol:
        raise SystemExit(f"bench_sampler: {args.dtype}{' + compile' if args.compile else ''} is off by {err:.3g}")

    cfg = SampleConfig(steps=args.steps, batch_size=args.batch)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)  # pixels per latent cell (8 paper, 4 smoke)
    images, masks = inputs(args.batch, model.latent_size * factor)
    seeds = list(range(args.batch))
    timed = TimedDenoiser(model, fn, device)  # cfg is plain fp32 eager: fn already holds the options
    out = inpaint_batch(timed, vae, images, masks, seeds, args.guidance, cfg)  # warm-up (and compile)
    variant = args.dtype != "fp32" or args.compile or args.channels_last
    ref = inpaint_batch(ref_model, vae, images, masks, seeds, args.guidance, cfg) if variant else out
    image_diff = float((out.float() - ref.float()).abs().max())
    timed.times_ms.clear()
    timed.cpu_ms.clear()
    totals = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        inpaint_batch(timed, vae, images, masks, seeds, args.guidance, cfg)
        if device.type == "cuda":
            torch.cuda.synchronize()
        totals.append(time.perf_counter() - t0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    return {
        "model": "moebius", "preset": args.preset, "device": name, "threads": args.threads if device.type == "cpu" else None,
        "batch": args.batch, "steps": args.steps, "guidance": args.guidance, "dtype": args.dtype,
        "compile": args.compile,
        "memory_format": "channels_last" if args.channels_last else "contiguous", "ms_per_step": round(statistics.median(timed.times_ms), 2),
        "cpu_ms_per_step": round(statistics.median(timed.cpu_ms), 2),
        "images_per_s": round(args.batch / statistics.median(totals), 4), "step_rel_err": float(f"{err:.3g}"),
        "tolerance": tol, "image_max_abs_diff": float(f"{image_diff:.3g}"), "repeats": args.repeats,
        "load1": round(os.getloadavg()[0], 2), "date": dt.date.today().isoformat(), "commit": commit_label("benchmarks/bench_sampler.py"),
        "torch_version": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--preset", default="paper", choices=["paper", "smoke"])
    ap.add_argument("--batch", type=int, default=1, help="images per sampler call (the CFG batch is twice this)")
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps (the paper's 20; fewer for a quick CPU run)")
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (pinned)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="fp32", choices=DTYPES, help="sample.precision of the denoiser")
    ap.add_argument("--compile", action="store_true", help="sample.compile: torch.compile the denoiser")
    ap.add_argument("--channels-last", action="store_true", help="the denoiser's convs and input channels-last")
    ap.add_argument("--weights", type=Path, default=None, help="student checkpoint (default: random weights)")
    ap.add_argument("--out", type=Path, default=None, help="CSV to append to (default results/sampler_<device>.csv)")
    args = ap.parse_args(argv)
    out = args.out or REPO / "benchmarks" / "results" / f"sampler_{args.device}.csv"

    row = run(args)
    print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    df = pd.DataFrame([row])
    write_csv(df, out, ("commit", "device", "date"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
