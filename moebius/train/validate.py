"""Held-out ε-MSE and the KD-vs-no-KD comparison (paper Tab. 2: "KD" column, Exp 9 vs Exp 10).

``validation_loss`` scores a finished run on a test split with noise, timesteps, masks and LCG ids
fixed by the config seed (the same for every run, so two runs see exactly the same examples);
``compare_kd`` writes one CSV row per run so the DAG records whether the distilled student's
validation loss is below that of the same student trained without KD for the same number of steps.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from moebius.atomic import write_text
from moebius.config import Config
from moebius.diffusion.latents import vae_factor
from moebius.errors import TrainError
from moebius.seeding import derive, torch_generator
from moebius.train.batches import (
    TrainStream,
    diffusion_batch,
    list_images,
)
from moebius.train.losses import TaskLoss
from moebius.train.runs import load_run, load_vae, schedule_of
from moebius.train.state import METRICS_CSV, read_metrics

VAL_TIMESTEPS = "uniform"  # every noise level weighted equally when comparing runs


@torch.no_grad()
def validation_batches(
    cfg: Config,
    vae: torch.nn.Module,
    latent_size: int,
    dataset: str,
    split: str = "test",
    n_batches: int = 4,
    batch_size: int = 8,
) -> list:
    """The fixed held-out batches (VAE latents, masks, noise, timesteps) that every run is scored on.

    Examples, noise, timesteps, masks and LCG ids are fixed by the config seed: centre crops, masks from
    ``masks.train_protocols``. Encoded once and shared by the runs compared (``compare_kd``): at 512 px
    the SDXL VAE's encoder is most of the cost, and four runs used to encode the same images four times.
    """
    if n_batches < 1 or batch_size < 1:
        raise TrainError(f"n_batches and batch_size must be >= 1, got {n_batches}, {batch_size}")
    seed = derive("train", cfg.seed, "validation")
    stream = TrainStream(
        list_images(cfg.paths.data, (dataset,), split), latent_size * vae_factor(vae), seed,
        cfg.masks.train_protocols, pipeline="project",
    )
    schedule = schedule_of(cfg)
    batches = []
    for i in range(n_batches):
        pos = range(i * batch_size, (i + 1) * batch_size)
        images, masks = (torch.stack(x) for x in zip(*(stream[p] for p in pos)))
        batches.append(diffusion_batch(vae, images, masks, torch_generator("train", seed, "batch", i), schedule,
                                       VAL_TIMESTEPS, 0.0, 0.0))
    return batches


@torch.no_grad()
def _score(model: torch.nn.Module, batches: list) -> float:
    task = TaskLoss()
    return sum(float(task(model(b.x, b.t, b.ids).sample, b.noise)) for b in batches) / len(batches)


@torch.no_grad()
def validation_loss(
    cfg: Config,
    run_dir: Path,
    vae_dir: Path,
    dataset: str,
    split: str = "test",
    n_batches: int = 4,
    batch_size: int = 8,
) -> float:
    """Mean ε-MSE of a run over ``n_batches`` fixed batches of ``dataset``/``split`` (conditional ids)."""
    model, _ = load_run(run_dir)
    batches = validation_batches(cfg, load_vae(vae_dir), model.latent_size, dataset, split, n_batches, batch_size)
    return _score(model, batches)


def compare_kd(
    cfg: Config,
    runs: dict[str, Path],
    vae_dir: Path,
    out_csv: Path,
    dataset: str | None = None,
    n_batches: int | None = None,
    batch_size: int | None = None,
) -> Path:
    """CSV (run, model, kd, steps, val_loss, first_loss_total, final_loss_total), one row per run.

    Every run is scored on the same batches, encoded once (``validation_batches``); their number and
    size default to ``ablation.kd_val_batches`` / ``kd_val_batch_size``.
    """
    from moebius.train.state import read_run

    n_batches = cfg.ablation.kd_val_batches if n_batches is None else n_batches
    batch_size = cfg.ablation.kd_val_batch_size if batch_size is None else batch_size
    if dataset is None:
        bench = cfg.benchmarks.get(cfg.ablation.benchmark)
        dataset = bench.dataset if bench is not None else cfg.distill.train.datasets[0]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "model", "kd", "steps", "dataset", "val_loss", "first_loss_total", "final_loss_total"])
    vae = load_vae(vae_dir)
    shared: dict[int, list] = {}  # latent size -> its batches (every run of the DAG has the same one)
    for name, run_dir in runs.items():
        info = read_run(run_dir)
        rows = read_metrics(Path(run_dir) / METRICS_CSV)
        first = rows[0]["loss_total"] if rows else float("nan")
        final = rows[-1]["loss_total"] if rows else float("nan")
        model, _ = load_run(Path(run_dir))
        if model.latent_size not in shared:
            shared[model.latent_size] = validation_batches(cfg, vae, model.latent_size, dataset, "test", n_batches, batch_size)
        val = _score(model, shared[model.latent_size])
        del model
        writer.writerow([name, info["model"], bool(info.get("kd")), info["steps"], dataset, repr(val), repr(first), repr(final)])
    write_text(out_csv, buf.getvalue())
    return Path(out_csv)
