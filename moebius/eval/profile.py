"""Parameters, compute and latency of the denoisers (paper Tab. 1-3: Params, GFLOPs, ms per step).

Two compute conventions, both recorded (reference/model_facts.md, "FLOPs"):

* ``gmacs_thop`` — the paper's convention. The "TFLOPs" of Tab. 1 (0.154 / 0.338) and the "GFLOPs"
  column of Tab. 2 are thop 0.1.1 ``profile`` totals, i.e. multiply-accumulates (1 per multiply-add).
  We re-implement thop's rule with forward hooks (thop itself is not a dependency): for modules of
  *exactly* these types — conv (out_numel x Cin/groups x kernel numel, no bias term), ``nn.Linear``
  (in_features x out_numel), ``nn.BatchNorm1d/2d/3d``, ``nn.LayerNorm`` and ``nn.InstanceNorm1d/2d/3d``
  (2 x input numel, doubled when affine). Everything else is free: GroupNorm, activations, interpolate,
  einsum/bmm/SDPA, the GLA core, and BatchNorm *subclasses* (timm's BatchNormAct2d), because thop
  looks handlers up by exact type.
* ``gflops_torch`` — ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add, counts
  matmuls/einsums/SDPA too, skips norms). About 2x the paper's numbers; kept so nobody mistakes one
  convention for the other.

Latency is milliseconds per denoising step (one U-Net forward) at batch 1 and at batch 2 (the CFG
batch the sampler actually runs, ``[uncond, cond]``), 512x512 images (64x64 latents): CUDA events on
GPU; on CPU pinned threads and medians (ENVIRONMENT.md, "Timing").
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from moebius.config import Config
from moebius.device import resolve_device
from moebius.diffusion.latents import vae_factor
from moebius.errors import EvalError
from moebius.records import make_record
from moebius.report.names import BUILD_NAMES

TIMESTEP = 999  # model_facts.md measured FLOPs at t=999; the cost does not depend on t

PROFILE_MODELS = BUILD_NAMES
"""Result-record model key -> ``build_model`` name (the one vocabulary, ``moebius.report.names``)."""

# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


def count_params(model: nn.Module) -> int:
    """Every parameter (buffers excluded): the paper's "Params" (226,041,531 for the student)."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# thop-convention MACs
# ---------------------------------------------------------------------------------------------


def _conv_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    # thop: output numel x (input channels / groups) x kernel numel; the bias add is not counted.
    kernel = math.prod(module.weight.shape[2:])
    return output.numel() * (inputs[0].shape[1] // module.groups) * kernel


def _linear_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    return module.in_features * output.numel()


def _norm_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    # thop: subtract + divide per element, and scale + shift again when the norm is affine.
    affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
    return 2 * inputs[0].numel() * (2 if affine else 1)


THOP_RULES: dict[type[nn.Module], Callable[[nn.Module, tuple, torch.Tensor], int]] = {
    nn.Conv1d: _conv_macs,
    nn.Conv2d: _conv_macs,
    nn.Conv3d: _conv_macs,
    nn.ConvTranspose1d: _conv_macs,
    nn.ConvTranspose2d: _conv_macs,
    nn.ConvTranspose3d: _conv_macs,
    nn.Linear: _linear_macs,
    nn.BatchNorm1d: _norm_macs,
    nn.BatchNorm2d: _norm_macs,
    nn.BatchNorm3d: _norm_macs,
    nn.LayerNorm: _norm_macs,
    nn.InstanceNorm1d: _norm_macs,
    nn.InstanceNorm2d: _norm_macs,
    nn.InstanceNorm3d: _norm_macs,
}
"""Exact module type -> thop 0.1.1 cost. Looked up with ``type(m)``, never ``isinstance``."""

# thop 0.1.1 also prices these module types. None occurs in our models; rather than guess thop's
# exact formula for each, refuse to count a model that contains one, so the paper's convention can
# never be silently mis-reproduced.
_THOP_PRICED_UNSUPPORTED: tuple[type[nn.Module], ...] = (
    nn.Softmax,
    nn.Upsample,
    nn.UpsamplingBilinear2d,
    nn.UpsamplingNearest2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.PReLU,
    nn.LeakyReLU,
)


def _as_tuple(inputs: Any) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _functional_conv_owners() -> dict[type[nn.Module], str]:
    """Module type -> name of a conv child whose weight that module runs through ``F.conv*`` itself.

    Our ``LocalLambda`` evaluates its ``pos_conv`` (a (1, r, r) Conv3d, as in the official model) as the
    equivalent 2-D convolution for speed, so the Conv3d's own forward hook never fires; thop, run on
    the official module, prices that Conv3d. We add its thop cost from the shapes instead.
    """
    from moebius.models.lambda_layers import LocalLambda

    return {LocalLambda: "pos_conv"}


def _functional_conv_macs(conv: nn.Module, x: torch.Tensor, channels_as_depth: int) -> int:
    # The Conv3d sees (B, 1, depth = value channels, H, W) and, with "same" spatial padding and no
    # stride, outputs (B, out_channels, depth, H, W).
    b, _, h, w = x.shape
    out_numel = b * conv.out_channels * channels_as_depth * h * w
    return out_numel * (conv.in_channels // conv.groups) * math.prod(conv.weight.shape[2:])


def thop_macs(model: nn.Module, inputs: Any) -> int:
    """Multiply-accumulates of one forward of ``model(*inputs)`` by thop 0.1.1's rule (see module doc).

    Runs in eval mode under ``no_grad`` (as ``thop.profile`` does) and restores the training flag.
    Works on ``torch.device("meta")`` models and inputs: only shapes are needed.
    """
    return forward_counts(model, inputs, flops=False)[0]


def torch_flops(model: nn.Module, inputs: Any) -> int:
    """FLOPs of one forward by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add)."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*_as_tuple(inputs))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def forward_counts(model: nn.Module, inputs: Any, flops: bool = True) -> tuple[int, int | None]:
    """``(thop_macs, torch_flops)`` from one forward: the thop hooks fire inside ``FlopCounterMode``.

    One pass instead of two (speed only: a paper-size forward on the meta device takes ~2 s of Python
    dispatch, the counter doubles it). ``flops=False`` skips the counter and returns None for it.
    """
    for name, module in model.named_modules():
        if type(module) in _THOP_PRICED_UNSUPPORTED:
            raise EvalError(
                f"thop_macs: module {name!r} is a {type(module).__name__}, which thop prices but this "
                "re-implementation does not; add its rule to THOP_RULES"
            )
    total = 0
    calls: dict[int, int] = {}  # id(module) -> forward calls seen

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += int(THOP_RULES[type(module)](module, args, output))
        calls[id(module)] = calls.get(id(module), 0) + 1

    owners = _functional_conv_owners()
    before: dict[int, int] = {}

    def owner_pre(module: nn.Module, args: tuple) -> None:
        before[id(module)] = calls.get(id(getattr(module, owners[type(module)])), 0)

    def owner_post(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        conv = getattr(module, owners[type(module)])
        if calls.get(id(conv), 0) == before[id(module)]:  # its own hook did not fire: it ran functionally
            total += _functional_conv_macs(conv, args[0], module.dim_v)

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in THOP_RULES]
    for m in model.modules():
        if type(m) in owners:
            handles += [m.register_forward_pre_hook(owner_pre), m.register_forward_hook(owner_post)]
    counter = FlopCounterMode(display=False) if flops else None
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), counter if counter is not None else contextlib.nullcontext():
            model(*_as_tuple(inputs))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total, (int(counter.get_total_flops()) if counter is not None else None)


# ---------------------------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------------------------


def time_step(
    model: nn.Module,
    inputs: Any,
    warmup: int,
    repeats: int,
    device: str | torch.device,
    *,
    threads: int | None = None,
) -> dict[str, float]:
    """Wall time of ``model(*inputs)`` in ms: ``{"median_ms", "p10", "p90", "repeats"}``.

    ``inputs`` must already be on ``device``. CUDA: one pair of CUDA events per repeat, synchronised.
    CPU: ``time.perf_counter`` with ``torch.set_num_threads(threads)`` pinned for the call (restored
    after), because a 2-core machine's thread scheduling makes means useless (quote medians).
    """
    if repeats < 1 or warmup < 0:
        raise EvalError(f"time_step: need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    device = torch.device(device)
    args = _as_tuple(inputs)
    old_threads = torch.get_num_threads()
    if threads is not None and device.type == "cpu":
        torch.set_num_threads(threads)
    was_training = model.training
    times: list[float] = []
    try:
        model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(*args)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                for _ in range(repeats):
                    start = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    start.record()
                    model(*args)
                    end.record()
                    torch.cuda.synchronize(device)
                    times.append(start.elapsed_time(end))
            else:
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(*args)
                    times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
        torch.set_num_threads(old_threads)
    arr = np.asarray(times)
    return {
        "median_ms": float(np.median(arr)),
        "p10": float(np.percentile(arr, 10)),
        "p90": float(np.percentile(arr, 90)),
        "repeats": repeats,
    }


# ---------------------------------------------------------------------------------------------
# One model, every number
# ---------------------------------------------------------------------------------------------


def step_inputs(
    model: nn.Module, batch: int, device: str | torch.device, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(noisy_latents (B,9,h,w), timesteps (B,), input_ids (B,10))`` for one denoising step.

    Batch 2 is the CFG batch ``[uncond ids 10..19, cond ids 0..9]``; batch 1 is the conditional row.
    """
    from moebius.models.lcg import cfg_ids, lcg_ids

    device = torch.device(device)
    side = model.latent_size  # type: ignore[attr-defined]
    channels = model.spec.in_channels  # type: ignore[attr-defined]  # cat[z_t 4, mask 1, z_masked 4]
    if device.type == "meta":
        latents = torch.empty(batch, channels, side, side, device=device, dtype=dtype)
    else:
        gen = torch.Generator().manual_seed(seed)
        latents = torch.randn(batch, channels, side, side, generator=gen, dtype=dtype).to(device)
    timesteps = torch.full((batch,), TIMESTEP, dtype=torch.long, device=device)
    if batch % 2 == 0:
        ids = cfg_ids(batch // 2, device=device)
    else:
        ids = lcg_ids(batch, conditional=True, device=device)
    return latents, timesteps, ids


def build_on(arch: str, preset: str, device: torch.device | str) -> nn.Module:
    """``build_model(arch, preset)`` with its tensors created directly on ``device`` ("meta" allocates nothing)."""
    from moebius.models import build_model

    with torch.device(device):
        return build_model(arch, preset)


def compute_counts(arch: str, preset: str) -> dict[str, int]:
    """``{"params", "macs_thop", "flops_torch"}`` of one batch-1 forward, counted on the meta device.

    Falls back to a real CPU forward if some op of the model has no meta kernel.
    """
    try:
        model = build_on(arch, preset, "meta")
        macs, flops = forward_counts(model, step_inputs(model, 1, "meta"))
    except (NotImplementedError, RuntimeError):
        # DEVIATION (speed only): a real CPU forward gives the same counts, just slower.
        model = build_on(arch, preset, "cpu")
        macs, flops = forward_counts(model, step_inputs(model, 1, "cpu"))
    return {"params": count_params(model), "macs_thop": macs, "flops_torch": flops}


def _resolution(model: nn.Module, requested: int, preset: str) -> int:
    from moebius.models.vae import vae_config

    latent = model.latent_size  # type: ignore[attr-defined]
    factor = vae_factor(vae_config(preset))  # the VAE that goes with the preset (f8 paper, f4 smoke)
    if requested // factor == latent and requested % factor == 0:
        return requested
    if preset == "smoke":
        return latent * factor  # tiny presets have their own fixed latent side
    raise EvalError(
        f"profile.resolution {requested} does not match the {preset} model's latent side {latent} "
        f"(x{factor} = {latent * factor})"
    )


def profile_model(
    cfg: Config,
    name: str,
    preset: str,
    *,
    weights_kind: str | None = None,
    dtype: str = "float32",
    timing: bool = True,
) -> list[dict]:
    """Records for model key ``name`` ("moebius", "pixelhacker", "exp1".."exp15") at ``preset`` sizes.

    Metrics (benchmark "efficiency"): params, gmacs_thop, gflops_torch (batch-1 forward),
    ms_per_step (batch 1), ms_per_step_cfg (batch 2: the CFG batch every official sampling step runs),
    total_s (= sample.steps x ms_per_step, the paper's convention), steps. ``weights_kind`` defaults to "official" at full
    scale and "standin" at smoke scale: the weights are random init, and none of these numbers depend
    on weight values. ``timing=False`` skips the latency measurements.
    """
    arch = PROFILE_MODELS.get(name)
    kind = weights_kind or ("official" if cfg.scale == "full" else "standin")
    device = resolve_device(cfg.profile.device, "profile.device")
    threads = cfg.profile.threads if device.type == "cpu" else None
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise EvalError(f"profile dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    torch_dtype = dtypes[dtype]

    counts = compute_counts(arch, preset)
    meta_model = build_on(arch, preset, "meta")
    resolution = _resolution(meta_model, cfg.profile.resolution, preset)
    base = {
        "experiment": "efficiency",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": threads,
        "resolution": resolution,
        "preset": preset,
        "arch": arch,
        "dtype": dtype,
    }

    def record(metric: str, value: float, **extra: Any) -> dict:
        return make_record(
            cfg,
            model=name,
            benchmark="efficiency",
            metric=metric,
            value=value,
            n_images=None,
            weights_kind=kind,
            data_version="none",
            settings={**base, **extra},
        )

    records = [
        record("params", counts["params"]),
        record("gmacs_thop", counts["macs_thop"] / 1e9, batch=1, convention="thop_macs"),
        record("gflops_torch", counts["flops_torch"] / 1e9, batch=1, convention="flop_counter_2_per_mac"),
        record("steps", cfg.sample.steps),
    ]
    if not timing:
        return records

    model = build_on(arch, preset, "cpu").to(device=device, dtype=torch_dtype)
    stats = {}
    for batch, metric in ((1, "ms_per_step"), (2, "ms_per_step_cfg")):
        inputs = step_inputs(model, batch, device, dtype=torch_dtype, seed=cfg.seed)
        stats[metric] = time_step(model, inputs, cfg.profile.warmup, cfg.profile.repeats, device, threads=threads)
        s = stats[metric]
        records.append(
            record(metric, s["median_ms"], batch=batch, p10=s["p10"], p90=s["p90"], repeats=s["repeats"],
                   warmup=cfg.profile.warmup)
        )
    records.append(
        # The paper's convention (Tab. 1): total time = steps x ms/step at batch 1. With CFG every real
        # step runs a batch of 2; that cost is the separate ms_per_step_cfg record.
        record("total_s", cfg.sample.steps * stats["ms_per_step"]["median_ms"] / 1e3,
               batch=1, steps=cfg.sample.steps, basis="ms_per_step")
    )
    return records
