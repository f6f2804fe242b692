"""The training runs of the reproduction, one public function each (paper Sec. 3.3 and 4.1).

- ``train_vae``: smoke only, a tiny AutoencoderKL (reconstruction MSE + a small KL), then
  ``scaling_factor`` = 1 / std of the training latents; full scale loads the SDXL VAE instead.
- ``train_teacher``: smoke only, the PixelHacker-shaped teacher from scratch with the ε-MSE diffusion
  loss; full scale loads the official PixelHacker checkpoint.
- ``distill``: the student (or a Table 2 variant) with the adaptive multi-granularity distillation
  (losses.py, balance.py); ``kd=False`` trains the same model with L_task only (Table 2 KD-off rows),
  ``losses`` picks a Table 5 combination.
- ``finetune``: per-benchmark fine-tuning with the ε-MSE loss from a finished run.
- ``load_run`` / ``load_vae``: what the inference side uses.
Every run writes the run-directory layout of state.py through loop.py; ``RunControl.resume`` continues a killed
run whose settings match, ``fresh`` moves an earlier run aside and starts over (loop.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from moebius.config import Config, TrainConfig
from moebius.diffusion.latents import vae_factor
from moebius.diffusion.schedule import NoiseSchedule, scaled_linear_schedule
from moebius.errors import TrainError
from moebius.seeding import derive, torch_generator
from moebius.train.balance import Balanced, balance
from moebius.train.batches import (
    TrainStream,
    data_versions,
    diffusion_batch,
    list_images,
)
from moebius.train.elatentlpips import build_perceptual_net
from moebius.train.loop import RunControl, RunSpec, StepContext, mean_across_ranks, run_training
from moebius.train.losses import (
    KD_LOSSES,
    CoarseKDLoss,
    FineKDLoss,
    PerceptualLoss,
    TaskLoss,
    check_losses,
)
from moebius.train.state import WEIGHTS_NAME, load_weights, read_run

UNCOND_PROB = 0.1  # train.lcg_ids cfg_dropout: share of samples trained with the unconditional LCG ids
KL_WEIGHT = 1e-4  # smoke VAE: weight of the per-element KL against the reconstruction MSE
VAE_CONFIG = "config.json"


# ---------------------------------------------------------------------------------------------
# Builders (the models package owns the architectures)
# ---------------------------------------------------------------------------------------------


def build_denoiser(name: str, preset: str) -> nn.Module:
    """``moebius.models.build_model`` (student | teacher | exp1..exp15)."""
    from moebius.models import build_model

    return build_model(name, preset)


def build_autoencoder(preset: str) -> nn.Module:
    """``moebius.models.build_vae`` (diffusers AutoencoderKL)."""
    from moebius.models import build_vae

    return build_vae(preset)


def schedule_of(cfg: Config) -> NoiseSchedule:
    """The DDPM training schedule, shared with the sampler's config (β 0.00085-0.012, 1000 steps)."""
    s = cfg.sample
    return scaled_linear_schedule(s.beta_start, s.beta_end, s.num_train_timesteps)


def _init_seed(cfg: Config, name: str) -> None:
    torch.manual_seed(derive("train", cfg.seed, "init", name))  # the same fresh weights on every rank


def uncond_prob(train: TrainConfig) -> float:
    """Share of samples given the foreground LCG ids: 0 under the official ``category`` rule."""
    return UNCOND_PROB if train.lcg_ids == "cfg_dropout" else 0.0


def recipe_info(train: TrainConfig) -> dict[str, Any]:
    """The training-recipe switches a run used, for its run.json (moebius.switches lists them)."""
    return {
        "pipeline": train.pipeline,
        "lcg_ids": train.lcg_ids,
        "uncond_prob": uncond_prob(train),
        "gradient_checkpointing": train.gradient_checkpointing,
        "lr_milestones": list(train.lr_milestones),
    }


def use_gradient_checkpointing(model: nn.Module, train: TrainConfig) -> None:
    """``train.gradient_checkpointing`` on the trained denoiser (official: the student's residual blocks)."""
    model.enable_gradient_checkpointing(train.gradient_checkpointing)


# ---------------------------------------------------------------------------------------------
# Loading finished runs
# ---------------------------------------------------------------------------------------------


def load_vae(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The frozen AutoencoderKL of a VAE run dir (config.json with its scaling_factor + weights)."""
    from diffusers import AutoencoderKL

    run_dir = Path(run_dir)
    cfg_path = run_dir / VAE_CONFIG
    if not cfg_path.is_file():
        raise TrainError(f"not a VAE run directory (no {VAE_CONFIG}): {run_dir}")
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    vae = AutoencoderKL.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    _load_run_weights(vae, run_dir)
    return vae.to(device).eval().requires_grad_(False)


def _load_run_weights(module: nn.Module, run_dir: Path, info: dict[str, Any] | None = None) -> None:
    """A trained run's model.safetensors, or the official file an installed run names (official.py)."""
    own = run_dir / WEIGHTS_NAME
    if not own.is_file():
        info = info if info is not None else read_run(run_dir)
        if "weights_file" in info:
            from moebius.train.official import load_installed

            load_installed(module, run_dir, info)
            return
    load_weights(module, own)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(denoiser in eval mode with the run's weights, run.json) of a finished run directory."""
    info = read_run(run_dir)
    if info.get("kind") == "vae":
        raise TrainError(f"{run_dir} is a VAE run: use load_vae")
    model = build_denoiser(info["model"], info["preset"])
    _load_run_weights(model, Path(run_dir), info)
    return model.to(device).eval(), info


# ---------------------------------------------------------------------------------------------
# VAE (smoke)
# ---------------------------------------------------------------------------------------------


class _VAEReconstruction(nn.Module):
    """Encode -> reparameterised sample -> decode, as one forward (what DDP needs)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor, eps_gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        post = self.vae.encode(images).latent_dist
        eps = torch.randn(post.mean.shape, generator=eps_gen).to(post.mean.device, post.mean.dtype)
        rec = self.vae.decode(post.mean + post.std * eps).sample
        kl = post.kl().mean() / post.mean[0].numel()  # per latent element
        return rec, kl


def latent_std(vae: nn.Module, stream: TrainStream, seed: int, max_images: int = 512, batch: int = 32) -> float:
    """Std of posterior samples of the training images (the diffusers recipe for scaling_factor)."""
    n = min(len(stream), max_images)
    gen = torch_generator("train", seed, "latent-std")
    device = next(vae.parameters()).device
    zs = []
    with torch.no_grad():
        for a in range(0, n, batch):
            x = torch.stack([stream.load(i) for i in range(a, min(a + batch, n))]).to(device)
            post = vae.encode(x).latent_dist
            eps = torch.randn(post.mean.shape, generator=gen).to(device)
            zs.append((post.mean + post.std * eps).float().flatten().cpu())
    std = float(torch.cat(zs).std())
    if not std > 0:
        raise TrainError(f"VAE latents have std {std}: cannot set scaling_factor")
    return std


def train_vae(cfg: Config, out_dir: Path, control: RunControl = RunControl()) -> Path:
    """Train the smoke VAE (or, with ``model.vae_source: official``, install the SDXL VAE)."""
    if cfg.model.weights_source("vae") == "official":
        from moebius.train.official import prepare_official

        return prepare_official(cfg, "vae", "pretrained", out_dir)
    train = cfg.vae_train
    _init_seed(cfg, "vae")
    vae = build_autoencoder(cfg.model.preset)
    from moebius.models.presets import get_preset

    size = get_preset(cfg.model.preset).image_size
    root = cfg.paths.data
    stream = TrainStream(list_images(root, train.datasets, "train"), size, cfg.seed, None, pipeline=train.pipeline)
    if train.gradient_checkpointing:  # diffusers' switch (the official script never trains a VAE)
        vae.enable_gradient_checkpointing()
    wrapper = _VAEReconstruction(vae)

    def step_fn(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        rec, kl = model(images, ctx.generator)
        mse = torch.nn.functional.mse_loss(rec.float(), images.float())
        return {"loss_total": mse + KL_WEIGHT * kl, "rec_mse": mse, "kl": kl}

    def finalize(model: nn.Module, out: Path) -> None:
        from moebius.atomic import write_text

        vae.eval()
        std = latent_std(vae, stream, cfg.seed)
        vae.register_to_config(scaling_factor=1.0 / std)  # so that scaled latents have unit std
        write_text(out / VAE_CONFIG, vae.to_json_string())

    info = {
        "kind": "vae",
        "model": "vae",
        "preset": cfg.model.preset,
        "weights_kind": "trained",
        "kl_weight": KL_WEIGHT,
        "pipeline": train.pipeline,
        "gradient_checkpointing": train.gradient_checkpointing,
        "data_versions": data_versions(root, train.datasets, "train"),
    }
    spec = RunSpec("vae", wrapper, train, train.steps, train.global_batch, stream, step_fn, info, finalize, export=vae)
    return run_training(cfg, spec, Path(out_dir), control)


# ---------------------------------------------------------------------------------------------
# Denoiser runs: teacher, distillation, fine-tuning
# ---------------------------------------------------------------------------------------------


def _denoiser_stream(cfg: Config, model: nn.Module, vae: nn.Module, train: TrainConfig) -> TrainStream:
    """The run's sample stream: ``train.pipeline``'s augmentations and masks, at the model's image size."""
    size = model.latent_size * vae_factor(vae)
    protocols = [cfg.masks.official_train_protocol] if train.pipeline == "official" else cfg.masks.train_protocols
    paths = list_images(cfg.paths.data, train.datasets, "train")
    return TrainStream(paths, size, cfg.seed, protocols, pipeline=train.pipeline)


def _eps_step(vae: nn.Module, train: TrainConfig, schedule: NoiseSchedule):
    """The plain diffusion loss (teacher training, fine-tuning): L_task = ‖ε − ε̂‖²."""
    task = TaskLoss()

    def step_fn(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        b = diffusion_batch(
            vae, images, masks, ctx.generator, schedule, train.timestep_sampling, train.noise_offset, uncond_prob(train)
        )
        loss = task(model(b.x, b.t, b.ids).sample, b.noise)
        return {"loss_total": loss, "task": loss}

    return step_fn


def _train_eps(cfg: Config, net: nn.Module, vae: nn.Module, train: TrainConfig, info: dict[str, Any],
               upstream: dict[str, Path], out_dir: Path, control: RunControl) -> Path:
    """A denoiser trained on the ε-MSE alone (L_task): the teacher from scratch and every fine-tune.

    ``info`` names the run (kind, model, preset, ...); the recipe, the VAE and the data versions are
    added here, so both kinds of run record them the same way (run.json is written with sorted keys).
    """
    info = {
        **info,
        "weights_kind": "trained",
        "kd": False,
        "losses": ["task"],
        **recipe_info(train),
        "vae_dir": str(upstream["vae"]),
        "data_versions": data_versions(cfg.paths.data, train.datasets, "train"),
    }
    stream = _denoiser_stream(cfg, net, vae, train)
    step_fn = _eps_step(vae, train, schedule_of(cfg))
    spec = RunSpec(info["kind"], net, train, train.steps, train.global_batch, stream, step_fn, info, frozen=[vae],
                   upstream=upstream)
    return run_training(cfg, spec, Path(out_dir), control)


def train_teacher(cfg: Config, vae_dir: Path, out_dir: Path, control: RunControl = RunControl()) -> Path:
    """Train the teacher from scratch (smoke) or install the official PixelHacker weights (full)."""
    if cfg.model.weights_source("teacher") == "official":
        from moebius.train.official import prepare_official

        return prepare_official(cfg, "teacher", "pretrained", out_dir)
    train = cfg.teacher_train
    vae = load_vae(vae_dir)
    _init_seed(cfg, "teacher")
    model = build_denoiser("teacher", cfg.model.preset)
    use_gradient_checkpointing(model, train)
    info = {"kind": "teacher", "model": "teacher", "preset": cfg.model.preset}
    return _train_eps(cfg, model, vae, train, info, {"vae": Path(vae_dir)}, out_dir, control)


def distill(
    cfg: Config,
    student: str,
    teacher_dir: Path,
    vae_dir: Path,
    out_dir: Path,
    *,
    steps: int | None = None,
    losses: tuple[str, ...] | None = None,
    kd: bool = True,
    control: RunControl = RunControl(),
) -> Path:
    """Distil ``student`` from the teacher run (paper Sec. 3.3); ``kd=False``: L_task only, no teacher."""
    d = cfg.distill
    if kd:
        chosen = check_losses(losses if losses is not None else d.losses)
    else:
        if losses is not None and set(losses) & set(KD_LOSSES):
            raise TrainError(f"kd=False cannot train the KD losses {sorted(set(losses) & set(KD_LOSSES))}")
        chosen = check_losses(losses if losses is not None else ("task",))
    # Without KD there is nothing to balance: L_total = L_task under either form ("none").
    form = d.balance if kd else "none"
    # ``steps`` (Tables 2 and 5: ablation.steps) cuts the run short; lr_milestones are absolute steps,
    # so the run follows the main schedule up to there (at full scale a flat 2e-4 until 18K).
    n_steps = d.train.steps if steps is None else steps
    train = dataclasses.replace(d.train, steps=n_steps)
    vae = load_vae(vae_dir)
    _init_seed(cfg, student)
    model = build_denoiser(student, cfg.model.preset)
    use_gradient_checkpointing(model, train)
    schedule = schedule_of(cfg)

    teacher = None
    if set(chosen) & set(KD_LOSSES):
        teacher, tinfo = load_run(teacher_dir)
        if tinfo.get("model") != "teacher":
            raise TrainError(f"{teacher_dir} holds {tinfo.get('model')!r}, not a teacher run")
    frozen: list[nn.Module] = [vae] + ([teacher] if teacher is not None else [])
    perceptual, perc_kind = None, None
    if "perceptual" in chosen:
        net, perc_kind = build_perceptual_net(d.perceptual, cfg)
        frozen.append(net)
        perceptual = PerceptualLoss(net, schedule, d.perceptual_form)
    ckd = CoarseKDLoss(model.coarse_feature_index, teacher.coarse_feature_index) if teacher is not None else None
    fkd, task = FineKDLoss(), TaskLoss()
    theta_f = model.get_parameter(model.final_layer_param)
    theta_c = model.get_parameter(model.coarse_layer_param)
    # per_rank (official): each rank's weights from its own micro-batch; all_reduce: one set for all ranks
    reduce = mean_across_ranks if d.balance_sync == "all_reduce" else None

    def step_fn(net: nn.Module, images: torch.Tensor, masks: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        b = diffusion_batch(
            vae, images, masks, ctx.generator, schedule, train.timestep_sampling, train.noise_offset, uncond_prob(train)
        )
        out = net(b.x, b.t, b.ids)  # ε̂_S (B, 4, h, w) and block outputs
        t_out = None
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher(b.x, b.t, b.ids)
        parts: dict[str, torch.Tensor] = {}
        if "c_kd" in chosen:
            parts["c_kd"] = ckd(out.block_outputs, t_out.block_outputs)
        if "f_kd" in chosen:
            parts["f_kd"] = fkd(out.sample, t_out.sample)
        if "task" in chosen:
            parts["task"] = task(out.sample, b.noise)
        if "perceptual" in chosen:
            parts["perceptual"] = perceptual(out.sample, b.z_t, b.t, b.z0, b.noise, ctx.generator)
        if form == "none":
            bal = Balanced(parts["task"])
        else:
            bal = balance(
                form, parts, theta_f, theta_c,
                lambda_kd=d.lambda_kd, lambda_task=d.lambda_task, lambda_perceptual=d.lambda_perceptual,
                reduce=reduce,
            )
        metrics = {"loss_total": bal.total, **{k: v.detach() for k, v in parts.items()}}
        metrics.update({k: torch.tensor(v) for k, v in {**bal.weights, **bal.norms}.items()})
        metrics["balance_fallbacks"] = torch.tensor(float(bal.fallbacks))
        return metrics

    info = {
        "kind": "distill",
        "model": student,
        "preset": cfg.model.preset,
        "weights_kind": "trained",
        "kd": bool(kd),
        "losses": list(chosen),
        "balance": form,
        "balance_sync": d.balance_sync if form != "none" else None,
        "perceptual": d.perceptual if perceptual is not None else None,
        "perceptual_weights_kind": perc_kind,
        "perceptual_form": d.perceptual_form if perceptual is not None else None,
        "teacher_dir": str(teacher_dir) if teacher is not None else None,
        "vae_dir": str(vae_dir),
        **recipe_info(train),
        "data_versions": data_versions(cfg.paths.data, train.datasets, "train"),
    }
    stream = _denoiser_stream(cfg, model, vae, train)
    upstream = {"vae": Path(vae_dir), "teacher": Path(teacher_dir) if teacher is not None else None}
    spec = RunSpec(
        "distill", model, train, n_steps, train.global_batch, stream, step_fn, info, frozen=frozen, upstream=upstream
    )
    return run_training(cfg, spec, Path(out_dir), control)


def finetune(
    cfg: Config,
    model: str,
    init_dir: Path,
    vae_dir: Path,
    target: str,
    out_dir: Path,
    control: RunControl = RunControl(),
) -> Path:
    """Fine-tune a finished run on one benchmark family (cfg.finetune.targets[target]) with ε-MSE."""
    if target not in cfg.finetune.targets:
        raise TrainError(f"unknown fine-tuning target {target!r}; choose from {sorted(cfg.finetune.targets)}")
    if model not in ("student", "teacher"):
        raise TrainError(f"finetune model must be 'student' or 'teacher', got {model!r}")
    if cfg.model.weights_source(model) == "official":  # the published fine-tuned checkpoint instead
        from moebius.train.official import prepare_official

        return prepare_official(cfg, model, f"ft_{target}", out_dir)
    tgt = cfg.finetune.targets[target]
    train = dataclasses.replace(cfg.finetune.train, steps=tgt.steps, global_batch=tgt.global_batch, datasets=tgt.datasets)
    vae = load_vae(vae_dir)
    net, init_info = load_run(init_dir)
    if init_info.get("model") != model:
        raise TrainError(f"{init_dir} holds {init_info.get('model')!r}, not {model!r}")
    use_gradient_checkpointing(net, train)
    # DEVIATION (paper §4.1): the paper does not say whether fine-tuning keeps distilling; we fine-tune
    # with the plain diffusion loss L_task.
    # The recipe is ASSUMED for fine-tuning: no official script (config.FinetuneConfig).
    info = {"kind": "finetune", "model": model, "preset": init_info["preset"], "target": target,
            "init_dir": str(init_dir)}
    return _train_eps(cfg, net, vae, train, info, {"vae": Path(vae_dir), "init": Path(init_dir)}, out_dir, control)
