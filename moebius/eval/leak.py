"""How much ground truth the official inference lets into the hole: the sampler start and the paste-back.

Both leaks are in the official pipelines (hustvl/Moebius ``removal/v1_2/pipeline.py``, hustvl/PixelHacker
``pipeline.py``) and both make a true-inpainting score optimistic:

1. **Start** (``sample.start = gt_noised``): the sampler starts from the ground-truth latent, hole
   included, noised to the first kept timestep, z_start = √ᾱ·z_gt + √(1−ᾱ)·ε (t = 900 for 20 steps at
   strength 0.99 or 0.999). With a model that predicts ε = 0, every DDIM step only rescales, so the
   final latent is z_start/√ᾱ = z_gt + √((1−ᾱ)/ᾱ)·ε: all of z_gt survives, at an amplitude SNR of
   √(ᾱ/(1−ᾱ)) ≈ 0.12. ``start_leak`` gives that closed form beside a measurement with the project's own
   DDIM (``diffusion.sampler.ddim_sample``, ε ≡ 0, random latents, output regressed on z_gt); from pure
   noise (``noise``) the measured share is ~0.
2. **Paste-back** (``sample.paste_back = blurred``): the blend reads the whole input image, so within
   about 3σ inside the hole edge part of the ground truth is mixed in (``composite.paste_leak``: the
   mean of 1 − m over the hole pixels of a mask set).

``write_leak_table`` writes both as one CSV (``results/tables/ground_truth_leak.csv``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from moebius.atomic import atomic_path
from moebius.config import Config, ConfigError, SampleConfig
from moebius.diffusion.composite import paste_leak
from moebius.diffusion.sampler import ddim_sample, model_sampling, sampling_timesteps, start_latents
from moebius.diffusion.schedule import scaled_linear_schedule, step_ratio
from moebius.errors import EvalError

LEAK_MODELS = ("moebius", "pixelhacker")  # the models our sampler runs (their own settings each)
COLUMNS = ("leak", "model", "benchmark", "start", "strength", "paste_back", "t_start", "alpha_bar",
           "gt_coef_start", "gt_snr_final", "gt_coef_measured", "gt_snr_measured", "n_masks",
           "hole_weight_from_input")


def start_leak(sample_cfg: SampleConfig, n: int = 16, size: int = 64, seed: int = 0) -> dict[str, Any]:
    """Closed form and ε ≡ 0 measurement of how much z_gt reaches the final latent (module docstring).

    ``gt_coef``: the coefficient of z_gt in the output; ``gt_snr``: that coefficient over the std of the
    rest. Closed form for ``gt_noised``: coef 1, SNR √(ᾱ/(1−ᾱ)); for ``noise``: 0.
    """
    schedule = scaled_linear_schedule(sample_cfg.beta_start, sample_cfg.beta_end, sample_cfg.num_train_timesteps)
    timesteps = sampling_timesteps(sample_cfg)
    t0 = timesteps[0]
    a = schedule.alpha_bar(t0)
    g = torch.Generator().manual_seed(seed)
    z_gt = torch.randn(n, 4, size, size, generator=g, dtype=torch.float64)
    noise = torch.randn(n, 4, size, size, generator=g, dtype=torch.float64)
    x = start_latents(sample_cfg.start, z_gt, noise, t0, schedule)
    z0 = ddim_sample(lambda x, t: torch.zeros_like(x), x, timesteps,  # a model that predicts ε = 0
                     step_ratio(sample_cfg.steps, sample_cfg.num_train_timesteps), schedule)
    coef = float((z0 * z_gt).sum() / (z_gt * z_gt).sum())  # least-squares regression of z0 on z_gt
    rest = float((z0 - coef * z_gt).std())
    leaks = sample_cfg.start == "gt_noised"
    return {
        "start": sample_cfg.start, "strength": sample_cfg.strength, "t_start": t0, "alpha_bar": a,
        "gt_coef_start": math.sqrt(a) if leaks else 0.0,
        "gt_snr_final": math.sqrt(a / (1 - a)) if leaks else 0.0,
        "gt_coef_measured": coef, "gt_snr_measured": abs(coef) / rest,
    }


def mask_paste_leak(masks_dir: Path, size: int, radius: float, max_masks: int = 256) -> tuple[float, int]:
    """``(mean 1 − m over hole pixels, masks read)`` for the first ``max_masks`` masks of a stored set."""
    from moebius.eval.inpaint import manifest_ids, read_masks  # the evaluation's own mask reading

    ids = manifest_ids(Path(masks_dir))[:max_masks]
    masks, _ = read_masks(Path(masks_dir), ids, size)
    hole = torch.from_numpy(np.stack([masks[i] for i in ids])).unsqueeze(1).float()  # (N,1,S,S)
    return paste_leak(hole, radius), len(ids)


def leak_rows(cfg: Config, masks: dict[str, Path] | None = None, max_masks: int = 256) -> list[dict[str, Any]]:
    """Rows of the leak table: one per (model, start) for the start leak; one per (model, benchmark)
    for the paste-back leak of each mask set in ``masks`` ({benchmark: mask folder})."""
    rows: list[dict[str, Any]] = []
    for model in LEAK_MODELS:
        sample_cfg, _ = model_sampling(cfg.sample, model, "natural")
        for start in cfg.eval.sampler_starts:
            leak = start_leak(dataclasses.replace(sample_cfg, start=start))
            rows.append({"leak": "sampler_start", "model": model, "benchmark": "", "paste_back": "", **leak})
    for bench_name, folder in sorted((masks or {}).items()):
        try:
            bench = cfg.benchmark(bench_name)
        except ConfigError as exc:  # an unknown benchmark name
            raise EvalError(str(exc)) from exc
        for model in LEAK_MODELS:
            sample_cfg, _ = model_sampling(cfg.sample, model, bench.domain)
            if sample_cfg.paste_back != "blurred":
                share, n = 0.0, 0  # hard composite / no paste: the input never enters the hole
            else:
                share, n = mask_paste_leak(Path(folder), bench.size, float(sample_cfg.paste_blur), max_masks)
            rows.append({"leak": "paste_back", "model": model, "benchmark": bench_name,
                         "paste_back": sample_cfg.paste_back, "n_masks": n, "hole_weight_from_input": share})
    return rows


def write_leak_table(cfg: Config, out: Path, masks: dict[str, Path] | None = None, max_masks: int = 256) -> Path:
    """Write ``leak_rows`` as a CSV (atomically); return its path."""
    df = pd.DataFrame(leak_rows(cfg, masks, max_masks), columns=list(COLUMNS))
    out = Path(out)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    return out
