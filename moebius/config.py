"""One config tree for Snakemake and the CLI: frozen dataclasses, one per concern.

Defaults are the paper's settings (full scale, Sec. 4.1 and the official code); `config/smoke.yaml`
overrides what must shrink to run on a laptop CPU. YAML is loaded into these dataclasses strictly:
an unknown key, a wrong type or a value out of its range (`bounds` metadata on the field) is a
one-line `ConfigError` naming the dotted path, the value and what is allowed, before anything runs.
`check_config` then checks what one field cannot: names that refer to a registry (datasets, mask
protocols, models, losses) or to another part of the config (benchmarks, fine-tuning targets), and
settings that must agree (global batch and micro-batch). `load_config` does both, for the CLI and
for Snakemake (`workflow/rules/common.smk`), so the two accept exactly the same files.
The JSON schema that the Snakefile validates against (`workflow/schemas/config.schema.json`) is
generated from these classes (`moebius config schema`), ranges included, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from moebius.errors import ConfigError, UnknownNameError, did_you_mean
from moebius.registry import Registry

# ---------------------------------------------------------------------------------------------
# Ranges: field metadata, checked at load and emitted in the JSON schema
# ---------------------------------------------------------------------------------------------


def bounds(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    multiple_of: int | None = None,
    min_items: int | None = None,
    unique: bool = False,
) -> dict[str, Any]:
    """Field metadata: the range of every number in the field (its list items and mapping values
    included) and, for lists, a minimum length and no repeats."""
    given = {"ge": ge, "gt": gt, "le": le, "lt": lt, "multiple_of": multiple_of, "min_items": min_items,
             "unique": unique or None}
    return {"bounds": {k: v for k, v in given.items() if v is not None}}


def ranged(default: Any, **limits: Any) -> Any:
    """``field(default=default)`` with `bounds` metadata."""
    return field(default=default, metadata=bounds(**limits))


_SIGNS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_COMPARE = {"ge": float.__ge__, "gt": float.__gt__, "le": float.__le__, "lt": float.__lt__}


def _allowed(limits: dict) -> str:
    parts = [f"{_SIGNS[k]} {limits[k]}" for k in _SIGNS if k in limits]
    if "multiple_of" in limits:
        parts.append(f"a multiple of {limits['multiple_of']}")
    return " and ".join(parts)


def _check_number(value: float, limits: dict, where: str) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not allowed; must be a finite number")
    for key in _SIGNS:
        if key in limits and not _COMPARE[key](float(value), float(limits[key])):
            raise ConfigError(f"{where}: {value!r} is not allowed; must be {_allowed(limits)}")
    if "multiple_of" in limits and value % limits["multiple_of"]:
        raise ConfigError(f"{where}: {value!r} is not allowed; must be {_allowed(limits)}")


def _check_items(items: tuple, limits: dict, where: str) -> None:
    if len(items) < limits.get("min_items", 0):
        raise ConfigError(f"{where}: {list(items)!r} is not allowed; needs at least {limits['min_items']} item(s)")
    if limits.get("unique"):
        seen: set = set()
        for item in items:
            if item in seen:
                raise ConfigError(f"{where}: {item!r} is listed twice; each item may appear once")
            seen.add(item)


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Where each phase writes; every path is relative to the repository root."""

    data: str = "data"  # datasets/<name>/<split>/ and benchmarks/<benchmark>/
    masks: str = "masks"  # <protocol>/v<version>/<benchmark>/
    checkpoints: str = "checkpoints"
    results: str = "results"
    logs: str = "logs"


@dataclass(frozen=True)
class DataConfig:
    """Which datasets exist and how they are obtained (Sec. 4.1; MASKS.md, datasets)."""

    # smoke: made locally from shipped photos; download: the publishers' archives; rehearsal: the real
    # download path on small archives in the publishers' layouts, served on 127.0.0.1 (moebius.rehearsal)
    source: Literal["smoke", "download", "rehearsal"] = "download"
    datasets: tuple[str, ...] = ranged(("places365", "celebahq", "ffhq", "lvis", "deepfakeface"), unique=True)
    image_size: int = ranged(64, ge=8)  # smoke only: side of the generated images
    n_train: int = ranged(64, ge=1)  # smoke only: training images per dataset
    n_test: int = ranged(16, ge=1)  # smoke only: test images per dataset
    rehearsal_images: int = ranged(3, ge=1)  # rehearsal only: images per generated split (sources.rehearsal_counts)
    # Which 10K of FFHQ's 70K images FFHQ (256) scores: the first (CoModGAN / MI-GAN, whose protocol the
    # paper's FFHQ row follows; training uses the other 60K) or the last (FFHQ's own validation split).
    # Copied from moebius.data.registry.FFHQ_VALIDATION (its names; tests/test_config.py keeps them equal).
    ffhq_validation: Literal["first_10k", "last_10k"] = "first_10k"


@dataclass(frozen=True)
class BenchmarkConfig:
    """One evaluation protocol of Sec. 4.1: images, size, preprocessing, masks, domain."""

    dataset: str
    split: str
    n_images: int = field(metadata=bounds(ge=1))  # images scored; FID depends strongly on it (MAT #63)
    size: int = field(metadata=bounds(ge=8, multiple_of=8))  # side of the evaluated images; the VAE is f8
    preprocess: Literal["mat_crop", "migan_resize", "lama_crop"]  # Copied from moebius.data.preprocess.PREPROCESSORS
    mask_protocol: str  # the generator of the stored set (and what an official set stands in for)
    domain: Literal["natural", "portrait"]  # picks the CFG scale (2.5 natural, 2.0 portrait)
    finetune: Literal["places2", "celebahq", "ffhq"]  # which fine-tuned weights evaluate it
    ood: bool = False  # zero-shot (Tab. 7)
    # How n_images are chosen from the split. Copied from moebius.data.selection.RULES, without "all"
    # (which takes every image, so it cannot choose n_images).
    selection: Literal["first", "last", "seeded"] = "first"
    # Which mask set scores it: None follows masks.source; generated = mask_protocol's seeded set;
    # official = the authors' published masks, imported with `moebius masks import`.
    mask_source: Literal["generated", "official"] | None = None


@dataclass(frozen=True)
class OfficialMasksConfig:
    """The evaluation masks the Moebius authors publish (README "Evaluation Resources"), per benchmark."""

    # benchmark -> the archive (.zip / .tar) or folder as downloaded; read by the `official_mask_set` rule
    archives: dict[str, str] = field(default_factory=dict)
    # How their files are read. 255_hole is how the official pipeline reads a mask file (255 = inpaint);
    # 255_known is MAT / MI-GAN's convention (inverted on import). See moebius/masks/official.py.
    polarity: Literal["255_hole", "255_known"] = "255_hole"  # Copied from moebius.masks.polarity.POLARITIES
    # stem: a mask file's name is the image's id or original file name; sorted: the official inference
    # script's rule, the i-th mask in name order goes with the i-th image in name order.
    pairing: Literal["stem", "sorted"] = "stem"  # Copied from moebius.masks.official.PAIRINGS


@dataclass(frozen=True)
class MaskConfig:
    """Stored mask sets (MASKS.md): one seed per project, one version per protocol."""

    # generated: each benchmark's mask_protocol, drawn here from a seed; official: the authors' published
    # masks (imported). A benchmark's own `mask_source` overrides this.
    source: Literal["generated", "official"] = "generated"
    official: OfficialMasksConfig = field(default_factory=OfficialMasksConfig)
    seed: int = ranged(2026, ge=0)
    workers: int = ranged(1, ge=1)
    stats_n: int = ranged(2000, ge=1)  # masks drawn per protocol for `moebius masks stats`
    # Masks of the `project` training pipeline: a protocol drawn uniformly per sample.
    train_protocols: tuple[str, ...] = ranged(
        ("mat_large_512", "lama_thick_512", "lama_medium_512"), min_items=1, unique=True
    )
    # Masks of the `official` training pipeline (train.pipeline): LaMa's MixedMaskGenerator with this
    # protocol's config, as the official data_demo.yaml names random_medium_512.yaml (lama_medium_256
    # for a 256-px training); check_config wants a lama_* protocol.
    official_train_protocol: str = "lama_medium_512"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture sizes (Sec. 3.2): `paper` is the official 226M / 862M pair; `smoke` is small (CPU
    minutes); `tiny` is the unit tests' size (same classes)."""

    preset: Literal["paper", "smoke", "tiny"] = "paper"  # Copied from moebius.models.presets.PRESETS (names)
    vae_source: Literal["official", "train"] = "official"  # SDXL f8d4 VAE, or a tiny one trained here
    teacher_source: Literal["official", "train"] = "official"  # PixelHacker checkpoint, or trained here
    # Weights scored in Tables 1, 3, 4, 6, 7: the official hustvl/Moebius checkpoints, or our own
    # distillation + fine-tuning. Tables 2 and 5 always train (they are training ablations).
    student_source: Literal["official", "train"] = "official"

    def weights_source(self, model: str) -> Literal["official", "train"]:
        """Whether ``model`` is installed from its official checkpoint or trained here.

        ``model``: vae | teacher | student, or the record names pixelhacker (teacher) / moebius
        (student). The one place the choice is read: the CLI, the training runs and the workflow
        (``common.smk``, at parse time: this module imports no torch) all ask here.
        """
        from moebius.report.names import BUILD_NAMES

        sources = {"vae": self.vae_source, "teacher": self.teacher_source, "student": self.student_source}
        sources.update({key: sources[build] for key, build in BUILD_NAMES.items() if build in sources})
        return Registry("model with official weights", sources).get(model)  # type: ignore[return-value]


@dataclass(frozen=True)
class TrainConfig:
    """One training run: optimiser, schedule, batch (Sec. 4.1)."""

    steps: int = ranged(138_000, ge=0)  # 0: not trained here (check_config wants >= 1 where it is)
    batch_size: int = ranged(48, ge=1)  # per process and micro-step
    global_batch: int = ranged(768, ge=1)  # reached by world size x accumulation (check_config)
    lr: float = ranged(2e-4, gt=0)
    # Absolute steps at which lr is multiplied by lr_gamma (increasing; check_config). Absolute, not
    # fractions of `steps`: a run cut short (Tables 2 and 5: "the 18K checkpoint" of the main schedule)
    # is the main schedule truncated, so it never reaches a milestone that lies beyond its last step.
    lr_milestones: tuple[int, ...] = ranged((111_000, 129_000), ge=1, unique=True)
    lr_gamma: float = ranged(0.1, gt=0, le=1)
    weight_decay: float = ranged(0.1, ge=0)
    optimizer: Literal["muon", "adamw"] = "muon"
    precision: Literal["bf16", "fp32", "auto"] = "auto"  # auto: bf16 where the device supports it
    grad_clip: float = ranged(1.0, ge=0)  # 0: no clipping
    checkpoint_every: int = ranged(2000, ge=1)
    log_every: int = ranged(50, ge=1)
    datasets: tuple[str, ...] = ranged(("places365", "celebahq", "ffhq"), min_items=1, unique=True)
    timestep_sampling: Literal["lognorm", "uniform"] = "lognorm"  # official --lognorm_t
    noise_offset: float = ranged(0.0357, ge=0)
    num_workers: int = ranged(4, ge=0)
    gpus: int = ranged(1, ge=1)  # processes torchrun launches (one per GPU); 1 runs plain, same code path
    # How a training sample is made (moebius.train.data_pipeline). official: RemovalDataset_v1_2 (LANCZOS
    # short-side resize, masks of masks.official_train_protocol dilated 99 % of the time, a square crop
    # that keeps the hole, horizontal flip); project: centre crop, bicubic, masks uniform over
    # masks.train_protocols, no dilation, no flip. The paper does not say.
    pipeline: Literal["official", "project"] = "official"
    # LCG ids of a training sample. category: as the official dataset (`_get_input_ids`), ids follow the
    # sample's task: background (every dataset here is mask-free) 0..9, foreground 10..19.
    # cfg_dropout: 10 % of samples get the foreground ids, to train CFG's unconditional branch.
    lcg_ids: Literal["category", "cfg_dropout"] = "category"
    # Recompute each residual block in backward (the official --gradient_checkpointing; needed for batch
    # 48 per GPU). Gradients are unchanged, but train-mode BatchNorms update their running statistics
    # on every recompute, as in the official run, so it counts for results.
    gradient_checkpointing: bool = True


@dataclass(frozen=True)
class DistillConfig:
    """Adaptive multi-granularity distillation (Sec. 3.3, Eq. 4-5)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    # official: `cal_adaptive_weights_type8` of the official script, the form that trained the released
    # weights (plain gradient norms, clamps, epsilons, static multipliers λ); paper: Eq. 4-5 as printed.
    balance: Literal["paper", "official"] = "official"
    # per_rank: each process computes the adaptive weights from its own micro-batch, as the official
    # script does (no collective); all_reduce: the weights are averaged over the ranks first.
    balance_sync: Literal["per_rank", "all_reduce"] = "per_rank"
    lambda_kd: float = ranged(0.01, ge=0)  # official static multipliers (train_demo.sh); used by `official` only
    lambda_task: float = ranged(0.5, ge=0)
    lambda_perceptual: float = ranged(0.5, ge=0)
    perceptual: Literal["elatentlpips", "standin"] = "elatentlpips"
    # How L_perceptual calls the metric. official: as train_distillation.py (x̂0(ε) target, latents
    # scaled by 0.13025 a second time, 'bg' augmentation ensemble); plain (DEVIATION): x0 target, the
    # once-scaled latents, no augmentation. The paper names only E-LatentLPIPS; the official script does this.
    perceptual_form: Literal["official", "plain"] = "official"
    losses: tuple[str, ...] = ranged(("c_kd", "f_kd", "task", "perceptual"), min_items=1, unique=True)


@dataclass(frozen=True)
class FinetuneTarget:
    """Fine-tuning on one benchmark family (Sec. 4.1)."""

    datasets: tuple[str, ...] = field(metadata=bounds(min_items=1, unique=True))
    steps: int = field(metadata=bounds(ge=1))
    global_batch: int = field(metadata=bounds(ge=1))  # with the fine-tuning batch_size and gpus (check_config)
    gpus: int = ranged(1, ge=1)


@dataclass(frozen=True)
class FinetuneConfig:
    """Per-benchmark fine-tuning of the distilled student, and of the teacher when it is trained here."""

    # The paper gives fine-tuning steps and batch only, and no fine-tuning script is released: the lr
    # (2e-5, constant), optimiser, LCG ids, data pipeline and gradient checkpointing are ASSUMPTIONS
    # (moebius.switches lists them; runs.finetune trains L_task only).
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=22, lr=2e-5, lr_milestones=()))
    targets: dict[str, FinetuneTarget] = field(
        default_factory=lambda: {
            "places2": FinetuneTarget(datasets=("places365",), steps=51_000, global_batch=88, gpus=4),
            "celebahq": FinetuneTarget(datasets=("celebahq",), steps=60_000, global_batch=44, gpus=2),
            "ffhq": FinetuneTarget(datasets=("ffhq",), steps=117_000, global_batch=88, gpus=4),
        }
    )


@dataclass(frozen=True)
class AblationConfig:
    """Tables 2 and 5: short runs from the same recipe, scored on Places2 (Test)."""

    steps: int = ranged(18_000, ge=1)  # "18K-iteration checkpoint"
    # GPUs (torchrun processes) per ablation run; 0: the distillation's (distill.train.gpus). The global
    # batch stays distill.train.global_batch: fewer GPUs accumulate more micro-batches.
    gpus: int = ranged(0, ge=0)
    experiments: tuple[int, ...] = ranged(tuple(range(1, 16)), unique=True)
    loss_combinations: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "c": ("c_kd",),
            "cf": ("c_kd", "f_kd"),
            "cft": ("c_kd", "f_kd", "task"),
            "cftp": ("c_kd", "f_kd", "task", "perceptual"),
        },
        metadata=bounds(min_items=1, unique=True),
    )
    benchmark: str = "places2_test"
    # compare_kd's held-out ε-MSE: fixed batches of the benchmark's dataset, the same for every run
    kd_val_batches: int = ranged(4, ge=1)
    kd_val_batch_size: int = ranged(8, ge=1)


@dataclass(frozen=True)
class SampleConfig:
    """Inference as the official pipeline runs it: DDIM, 20 steps, LCG classifier-free guidance."""

    steps: int = ranged(20, ge=1)  # and <= num_train_timesteps (check_config)
    cfg_natural: float = ranged(2.5, ge=0)
    cfg_portrait: float = ranged(2.0, ge=0)
    beta_start: float = ranged(0.00085, gt=0, lt=1)  # and < beta_end (check_config)
    beta_end: float = ranged(0.012, gt=0, lt=1)
    num_train_timesteps: int = ranged(1000, ge=2)
    # DEVIATION (official pipeline): it starts from the ground-truth latent noised to t≈900
    # (strength 0.99), so some ground truth leaks into the hole; `noise` starts from pure noise.
    start: Literal["noise", "gt_noised"] = "noise"
    strength: float = ranged(0.99, gt=0, le=1)
    # Benchmarks smaller than the model (256 px; 32 px at smoke scale). model: as the official pipeline,
    # LANCZOS to the model's size, scored there against the LANCZOS-resized ground truth; benchmark:
    # bicubic there and back, scored at the benchmark's size (moebius/eval/score_size.py).
    score_size: Literal["model", "benchmark"] = "model"
    noise_offset: float = ranged(0.0357, ge=0)
    # How the decoded output meets the known pixels (moebius.diffusion.composite.finish): `blurred` is
    # the official pipeline's paste through the hole mask blurred by PIL GaussianBlur(paste_blur)
    # (infer_moebius.py --pst, default on); `hard` the binary composite that MAT / LaMa score; `none`
    # the raw decoded image (PixelHacker's own inference).
    paste_back: Literal["blurred", "hard", "none"] = "blurred"
    paste_blur: float = ranged(3.0, gt=0)  # σ (px) of that blur; official GaussianBlur(radius=3)
    # PixelHacker rows (Tab. 1, 3, 4, 7 carry the PixelHacker paper's own numbers, "†") are sampled as
    # PixelHacker's infer_pixelhacker.py does: guidance 4.5 in every domain, strength 0.999, no paste.
    pixelhacker_guidance: float = ranged(4.5, ge=0)
    pixelhacker_strength: float = ranged(0.999, gt=0, le=1)
    pixelhacker_paste_back: Literal["blurred", "hard", "none"] = "none"
    batch_size: int = ranged(8, ge=1)
    seed: int = ranged(0, ge=0)
    # Speed only, opt-in, for GPUs (moebius.diffusion.sampler.sampling_denoiser): the denoiser's autocast
    # precision (the VAE and the DDIM update stay fp32) and torch.compile of the denoiser. fp32 eager is
    # the reference; bf16 / fp16 change each step's ε by ~1e-2 relative (tests/diffusion), so sample
    # folders and result records name the precision they used. On CPU compiling takes minutes.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """FID / LPIPS as MAT computes them (MASKS.md, evaluation conventions)."""

    models: tuple[str, ...] = ranged(
        ("moebius", "pixelhacker", "flux_fill", "sd35_inpaint", "telea", "navier_stokes", "lama", "mat", "migan",
         "comodgan", "sd15_inpaint"), min_items=1, unique=True
    )
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    lpips_range: Literal["minus_one_one", "zero_one"] = "minus_one_one"
    hole_bins: int = ranged(10, ge=1)  # LaMa-style per-hole-ratio bins
    # Fewest images a per-bin FID is reported from; below it the record says "too few" and has no value.
    # 2048 = the Inception pool feature dimension: with fewer images the feature covariance is singular
    # (rank <= n - 1), and the FID of n images carries a bias of order D/n that swamps the differences.
    min_fid_images: int = ranged(2048, ge=2)
    # Sampler starts the main tables (Tab. 1, 3, 4, 7) are made under for our diffusion models (moebius,
    # pixelhacker): sample.start gives the primary rows, every other start adds rows `start=<start>`.
    sampler_starts: tuple[Literal["noise", "gt_noised"], ...] = ranged(("noise", "gt_noised"), min_items=1,
                                                                        unique=True)
    bootstrap: int = ranged(1000, ge=0)  # resamples for confidence intervals (0 = off)
    batch_size: int = ranged(32, ge=1)
    flux_steps: int = ranged(50, ge=1)
    sd35_steps: int = ranged(28, ge=1)
    cfg_sweep: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {
            "places2_test": (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5),
            "celebahq512": (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
        },
        metadata=bounds(ge=0, min_items=1, unique=True),
    )


@dataclass(frozen=True)
class ProfileConfig:
    """Latency and compute (Tab. 1-3): batch 1, 512x512, ms per denoising step."""

    resolution: int = ranged(512, ge=8, multiple_of=8)
    warmup: int = ranged(3, ge=0)
    repeats: int = ranged(10, ge=1)
    threads: int = ranged(1, ge=1)  # CPU timing: pinned threads, medians (ENVIRONMENT.md)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Profile the paper-size models even at smoke scale. Copied from moebius.models.presets.PRESETS (names).
    preset: Literal["paper", "smoke", "tiny"] = "paper"


@dataclass(frozen=True)
class WeightsConfig:
    """External weights: one local directory; stand-ins only where explicitly allowed."""

    dir: str = "weights"  # $MOEBIUS_WEIGHTS_DIR wins over it (moebius.weights.weights_root)
    allow_standin: bool = False


@dataclass(frozen=True)
class Config:
    """The whole run. `scale` is recorded in every result."""

    # rehearsal: the full-scale code paths and model sizes with only the sizes of work cut (issue 14)
    scale: Literal["smoke", "rehearsal", "full"] = "full"
    seed: int = ranged(0, ge=0)
    paths: Paths = field(default_factory=Paths)
    data: DataConfig = field(default_factory=DataConfig)
    benchmarks: dict[str, BenchmarkConfig] = field(default_factory=dict)
    masks: MaskConfig = field(default_factory=MaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    vae_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=0))
    teacher_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=0))
    distill: DistillConfig = field(default_factory=DistillConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)

    def benchmark(self, name: str) -> BenchmarkConfig:
        """``benchmarks[name]``, or a ConfigError with a "did you mean" hint."""
        try:
            return Registry("benchmark", self.benchmarks).get(name)
        except UnknownNameError as exc:
            raise ConfigError(str(exc)) from None

    def mask_source(self, name: str) -> str:
        """``generated`` or ``official``: the benchmark's own setting, else ``masks.source``."""
        return self.benchmark(name).mask_source or self.masks.source


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, where: str, limits: dict | None = None) -> Any:
    """Check ``value`` against the annotation ``tp`` (and the field's `bounds`, which reach every
    number and list inside it) and build dataclasses; raise ConfigError."""
    limits = limits or {}
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(arg, value, where, limits)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item_tp, _) = typing.get_args(tp)
        items = tuple(_convert(item_tp, v, f"{where}[{i}]", limits) for i, v in enumerate(value))
        _check_items(items, limits, where)
        return items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        key_tp, val_tp = typing.get_args(tp)
        return {_convert(key_tp, k, where): _convert(val_tp, v, f"{where}.{k}", limits) for k, v in value.items()}
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null")
        return None
    if tp is float:
        # No numeric strings: the loader reads `2e-4` as a number (_Loader), and the JSON schema,
        # which Snakemake checks too, would refuse a string; both paths must accept the same files.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        _check_number(value, limits, where)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        _check_number(value, limits, where)
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover - a bug in this module


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}", f.metadata.get("bounds"))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {f.name!r}")
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    """Build a `Config` from a (merged) mapping; unknown keys, wrong types and values out of range are
    errors. Names are not looked up here (see `check_config`)."""
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping at the top level")
    return _build(Config, data, "config")


def merge(base: dict, override: dict) -> dict:
    """Deep-merge two mappings the way Snakemake merges `--configfile`s (later wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with two changes for config files.

    YAML 1.1 (PyYAML) reads a float without a dot or without an exponent sign (`2e-4`, `1.0e5`) as a
    string; YAML 1.2, JSON and everyone writing a learning rate mean a number, so it is read as one.
    A key given twice in one mapping is an error (PyYAML silently keeps the last one).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(f"{self.name}: duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> dict:
    """Read one YAML config file; an unreadable, empty or malformed file is a one-line ConfigError.

    An empty (or all-comment) file is an error, not "all defaults": the defaults are the full paper
    scale, which nobody means by an empty file.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"config file {path} is a directory") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if data is None or data == {}:
        raise ConfigError(f"config file {path} is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(*paths: str | Path, overrides: dict | None = None) -> Config:
    """Load and merge YAML files in order (later wins), then ``overrides``; validate strictly
    (`config_from_dict`) and check names and cross-references (`check_config`)."""
    if not paths:
        raise ConfigError("no config file given")
    merged: dict = {}
    for path in paths:
        merged = merge(merged, read_yaml(path))
    return check_config(config_from_dict(merge(merged, dict(overrides or {}))))


# ---------------------------------------------------------------------------------------------
# Names and cross-references
# ---------------------------------------------------------------------------------------------

# Names owned by modules that import torch at import time, copied so that validating a config (every
# CLI call, and Snakemake while it parses the DAG) never imports torch. tests/test_config.py keeps each
# copy equal to its owner.
LOSS_NAMES = ("c_kd", "f_kd", "task", "perceptual")  # Copied from moebius.train.losses.LOSS_NAMES
# Copied from moebius.eval.baselines.BASELINES: the methods that run here (family "reported" only has
# the paper's numbers, no loader).
EVAL_MODELS = ("moebius", "pixelhacker", "flux_fill", "sd35_inpaint", "telea", "navier_stokes", "lama", "mat", "migan",
               "comodgan", "sd15_inpaint")
TABLE2_EXPERIMENTS = tuple(range(1, 16))  # Copied from moebius.models.variants.EXPERIMENTS (keys)
# The Table 2 experiments trained with the distillation (the others with L_task only); the workflow
# passes --kd / --no-kd from this while it parses. Copied from moebius.models.variants.EXPERIMENTS (kd).
TABLE2_KD = (7, 8, 9, 11, 12, 13, 14, 15)


def literal_choices(cls: type, name: str) -> tuple[str, ...]:
    """The values the ``Literal`` field ``name`` of config dataclass ``cls`` allows (for the CLI's choices)."""
    return tuple(str(v) for v in typing.get_args(typing.get_type_hints(cls)[name]))


def _name(where: str, known: Registry, name: Any) -> None:
    """Raise ``<where>: unknown <what> 'x' (did you mean 'y'?); known: …`` unless ``known`` holds ``name``."""
    try:
        known.get(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _names(where: str, known: Registry, names: tuple) -> None:
    for i, name in enumerate(names):
        _name(f"{where}[{i}]", known, name)


def _named(what: str, names: Any) -> Registry:
    """A registry of plain names (the copies above, or the config's own benchmarks and targets)."""
    return Registry(what, ((n, n) for n in names))


def _at_least_one_step(where: str, steps: int, why: str) -> None:
    if steps < 1:
        raise ConfigError(f"{where}: {steps!r} is not allowed; must be >= 1 {why}")


def ablation_gpus(cfg: "Config") -> int:
    """The GPUs (torchrun processes) of one ablation run: ``ablation.gpus``, or the distillation's."""
    return cfg.ablation.gpus or cfg.distill.train.gpus


def _whole_batches(where: str, global_batch: int, batch_size: int, gpus: int) -> None:
    """The training loop reaches global_batch as batch_size x gpus (world size) x accumulation steps."""
    per_step = batch_size * gpus
    if global_batch % per_step:
        allowed = ", ".join(str(per_step * k) for k in range(1, 4))
        raise ConfigError(
            f"{where}: {global_batch} is not a multiple of batch_size {batch_size} x gpus {gpus} = {per_step}"
            f"; allowed: {allowed}, ..."
        )


def check_config(cfg: Config) -> Config:
    """Check what one field cannot: names that must exist in a registry or elsewhere in the config,
    and settings that must agree. Returns ``cfg``; raises a one-line ConfigError naming the path.

    Datasets come from `moebius.data.registry` and mask protocols from `moebius.masks.registry`
    (neither imports torch); losses, models and Table 2 experiments from the copies above.
    """
    from moebius.data.registry import DATASETS
    from moebius.masks.registry import PROTOCOLS

    benchmarks = _named("benchmark", cfg.benchmarks)
    targets = _named("fine-tuning target", cfg.finetune.targets)
    losses_known = _named("loss", LOSS_NAMES)
    if not cfg.benchmarks:
        raise ConfigError(
            "config.benchmarks: none configured; at least one benchmark is needed (see config/smoke.yaml)"
        )
    scale_of_source = {"smoke": "smoke", "download": "full", "rehearsal": "full"}[cfg.data.source]
    if (cfg.scale == "rehearsal") != (cfg.data.source == "rehearsal"):
        raise ConfigError(
            f"config.data.source: {cfg.data.source!r} with scale {cfg.scale!r}; a rehearsal reads the generated "
            "sources and only the generated sources (scale: rehearsal with data.source: rehearsal)"
        )

    def dataset(where: str, name: str, used: bool) -> Any:
        """A registered dataset; when it is used, one that `data.source` makes."""
        _name(where, DATASETS, name)
        spec = DATASETS[name]
        if used and spec.scale != scale_of_source:
            raise ConfigError(
                f"{where}: {name!r} is a {spec.scale}-scale dataset but data.source is {cfg.data.source!r}; "
                f"allowed: {', '.join(n for n, s in sorted(DATASETS.items()) if s.scale == scale_of_source)}"
            )
        return spec

    def split(where: str, spec: Any, name: str) -> Any:
        try:  # the registry's lookup: FFHQ's train / val follow data.ffhq_validation
            return spec.split(name, cfg.data.ffhq_validation)
        except UnknownNameError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    for i, name in enumerate(cfg.data.datasets):
        dataset(f"config.data.datasets[{i}]", name, used=True)

    for bname, bench in cfg.benchmarks.items():
        where = f"config.benchmarks.{bname}"
        spec = dataset(f"{where}.dataset", bench.dataset, used=True)
        count = split(f"{where}.split", spec, bench.split).count
        _name(f"{where}.mask_protocol", PROTOCOLS, bench.mask_protocol)
        _name(f"{where}.finetune", targets, bench.finetune)
        # Images the split holds: smoke splits have data.n_train / n_test, full ones their published count.
        if spec.scale == "smoke":
            count = {"train": cfg.data.n_train, "test": cfg.data.n_test}.get(bench.split)
        if count is not None and bench.n_images > count:
            raise ConfigError(
                f"{where}.n_images: {bench.n_images} is not allowed; must be <= {count}, the images of "
                f"{bench.dataset} {bench.split}"
            )

    _names("config.masks.train_protocols", PROTOCOLS, cfg.masks.train_protocols)
    for bname in cfg.masks.official.archives:
        _name(f"config.masks.official.archives.{bname}", benchmarks, bname)
    for bname in cfg.benchmarks:
        if cfg.mask_source(bname) == "official" and bname not in cfg.masks.official.archives:
            raise ConfigError(
                f"config.masks.official.archives: no archive for benchmark {bname!r}, which is scored with the "
                f"official masks; name the file or folder downloaded from the link in `moebius masks import --help`"
            )
    where = "config.masks.official_train_protocol"
    _name(where, PROTOCOLS, cfg.masks.official_train_protocol)
    lama = [p for p in PROTOCOLS.names() if p.startswith("lama_")]  # MixedMaskGenerator needs a LaMa config
    if cfg.masks.official_train_protocol not in lama:
        raise ConfigError(f"{where}: {cfg.masks.official_train_protocol!r} is not a LaMa protocol; allowed: {', '.join(lama)}")
    for where, train in (("config.vae_train", cfg.vae_train), ("config.teacher_train", cfg.teacher_train),
                         ("config.distill.train", cfg.distill.train), ("config.finetune.train", cfg.finetune.train)):
        ms = train.lr_milestones
        if list(ms) != sorted(ms):
            raise ConfigError(f"{where}.lr_milestones: {list(ms)!r} is not allowed; must be increasing steps")

    # Training sections: which ones run follows the model sources (official weights are not trained).
    model = cfg.model
    finetunes_here = "train" in (model.student_source, model.teacher_source)
    sections = [
        ("config.vae_train", cfg.vae_train, model.vae_source == "train", "when model.vae_source is 'train'"),
        ("config.teacher_train", cfg.teacher_train, model.teacher_source == "train",
         "when model.teacher_source is 'train'"),
        ("config.distill.train", cfg.distill.train, True, "(the distillation runs at every scale)"),
    ]
    for where, train, used, why in sections:
        for i, name in enumerate(train.datasets):
            spec = dataset(f"{where}.datasets[{i}]", name, used)
            if used:
                split(f"{where}.datasets[{i}]", spec, "train")
        if used:
            _at_least_one_step(f"{where}.steps", train.steps, why)
            _whole_batches(f"{where}.global_batch", train.global_batch, train.batch_size, train.gpus)
    _whole_batches("config.ablation.gpus", cfg.distill.train.global_batch, cfg.distill.train.batch_size,
                   ablation_gpus(cfg))
    # Fine-tuning runs take steps, global batch, gpus and datasets from each target, the rest from
    # finetune.train (whose own steps, global_batch, gpus and datasets are not used).
    for tname, target in cfg.finetune.targets.items():
        where = f"config.finetune.targets.{tname}"
        for i, name in enumerate(target.datasets):
            spec = dataset(f"{where}.datasets[{i}]", name, finetunes_here)
            if finetunes_here:
                split(f"{where}.datasets[{i}]", spec, "train")
        _whole_batches(f"{where}.global_batch", target.global_batch, cfg.finetune.train.batch_size, target.gpus)

    _names("config.distill.losses", losses_known, cfg.distill.losses)
    for combo, losses in cfg.ablation.loss_combinations.items():
        _names(f"config.ablation.loss_combinations.{combo}", losses_known, losses)
    for i, exp in enumerate(cfg.ablation.experiments):
        if exp not in TABLE2_EXPERIMENTS:
            raise ConfigError(
                f"config.ablation.experiments[{i}]: {exp!r} is not a Table 2 experiment; "
                f"allowed: {TABLE2_EXPERIMENTS[0]}..{TABLE2_EXPERIMENTS[-1]}"
            )
    _name("config.ablation.benchmark", benchmarks, cfg.ablation.benchmark)

    _names("config.eval.models", _named("model", EVAL_MODELS), cfg.eval.models)
    for bname in cfg.eval.cfg_sweep:
        _name(f"config.eval.cfg_sweep.{bname}", benchmarks, bname)

    s = cfg.sample
    if s.beta_start >= s.beta_end:
        raise ConfigError(
            f"config.sample.beta_start: {s.beta_start!r} is not allowed; must be < beta_end ({s.beta_end!r})"
        )
    if s.steps > s.num_train_timesteps:
        raise ConfigError(
            f"config.sample.steps: {s.steps!r} is not allowed; must be <= num_train_timesteps ({s.num_train_timesteps})"
        )
    starts = set(cfg.eval.sampler_starts) | {s.start}
    for key, strength in (("strength", s.strength), ("pixelhacker_strength", s.pixelhacker_strength)):
        if "gt_noised" in starts and int(s.steps * strength) < 1:  # as diffusion.schedule.truncate_by_strength
            raise ConfigError(
                f"config.sample.{key}: {strength!r} with {s.steps} steps leaves no denoising step; "
                f"must be >= {1 / s.steps:g}"
            )
    if s.start not in cfg.eval.sampler_starts:
        raise ConfigError(
            f"config.eval.sampler_starts: {list(cfg.eval.sampler_starts)!r} must include sample.start "
            f"({s.start!r}), the start of the primary rows"
        )
    return cfg


def to_dict(cfg: Any) -> Any:
    """A plain, JSON-safe mapping of a config (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def config_hash(cfg: Any) -> str:
    """A short, stable hash of a config or of one of its sections."""
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def dump_yaml(cfg: Config) -> str:
    """The resolved config as YAML, saved beside outputs and inside checkpoints."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def write_resolved(files: tuple | list, overrides: dict, outs: list, expect_hash: str | None = None) -> Config:
    """Load ``files`` + ``overrides`` and write the resolved YAML to each of ``outs`` (atomically): the
    file every workflow job reads. ``expect_hash``: the hash the workflow computed when it built the DAG;
    a config file edited since would make the jobs disagree with the DAG, so it is refused."""
    from moebius.atomic import write_text

    cfg = load_config(*files, overrides=overrides)
    if expect_hash is not None and config_hash(cfg) != expect_hash:
        raise ConfigError(
            f"the config now resolves to hash {config_hash(cfg)}, not {expect_hash} as when the workflow "
            f"was planned: {', '.join(map(str, files))} changed since; start the workflow again"
        )
    for out in outs:
        write_text(out, dump_yaml(cfg))
    return cfg


# ---------------------------------------------------------------------------------------------
# JSON schema (draft 2020-12), generated from the dataclasses
# ---------------------------------------------------------------------------------------------

SCHEMA_ID = "https://json-schema.org/draft/2020-12/schema"


_SCHEMA_KEYWORDS = {
    "ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum", "multiple_of": "multipleOf",
}


def _schema_of(tp: Any, limits: dict | None = None) -> dict:
    """The JSON schema of an annotation; `bounds` become minimum / exclusiveMinimum / … on every
    number inside the field and minItems / uniqueItems on its lists, as `_convert` applies them."""
    limits = limits or {}
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = dataclasses.fields(tp)
        required = [
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        schema: dict = {
            "type": "object",
            "description": (tp.__doc__ or "").strip().splitlines()[0],
            "properties": {f.name: _schema_of(hints[f.name], f.metadata.get("bounds")) for f in fields},
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        return schema
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_of(a, limits) for a in typing.get_args(tp)]}
    if origin is tuple:
        schema = {"type": "array", "items": _schema_of(typing.get_args(tp)[0], limits)}
        if "min_items" in limits:
            schema["minItems"] = limits["min_items"]
        if limits.get("unique"):
            schema["uniqueItems"] = True
        return schema
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(typing.get_args(tp)[1], limits)}
    if tp is type(None):
        return {"type": "null"}
    if tp in (float, int):
        schema = {"type": "number" if tp is float else "integer"}
        schema.update({_SCHEMA_KEYWORDS[k]: v for k, v in limits.items() if k in _SCHEMA_KEYWORDS})
        return schema
    return {str: {"type": "string"}, bool: {"type": "boolean"}}[tp]


def json_schema() -> dict:
    """The JSON schema of `Config`, for Snakemake's `validate()`."""
    schema = _schema_of(Config)
    return {"$schema": SCHEMA_ID, "title": "moebius-repro config", **schema}
