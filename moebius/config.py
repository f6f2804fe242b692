"""One config tree for Snakemake and the CLI: frozen dataclasses, one per concern.

Defaults are the paper's settings (full scale, Sec. 4.1 and the official code); `config/smoke.yaml`
overrides what must shrink to run on a laptop CPU. YAML is loaded into these dataclasses strictly:
an unknown key or a wrong type is a `ConfigError` naming the dotted path, before anything runs.
The JSON schema that the Snakefile validates against (`workflow/schemas/config.schema.json`) is
generated from these classes (`moebius config schema`), so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from moebius.errors import ConfigError  # noqa: F401 (re-exported)
from moebius.errors import UnknownNameError

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

    source: Literal["smoke", "download"] = "download"  # smoke: made locally from shipped photos
    datasets: tuple[str, ...] = ("places365", "celebahq", "ffhq", "lvis", "deepfakeface")
    image_size: int = 64  # smoke only: side of the generated images
    n_train: int = 64  # smoke only: training images per dataset
    n_test: int = 16  # smoke only: test images per dataset
    ffhq_validation: Literal["last_10k", "first_10k"] = "last_10k"  # official vs CoModGAN/MI-GAN split


@dataclass(frozen=True)
class BenchmarkConfig:
    """One evaluation protocol of Sec. 4.1: images, size, preprocessing, masks, domain."""

    dataset: str
    split: str
    n_images: int  # images scored; FID depends strongly on it (MAT #63)
    size: int  # side of the evaluated images
    preprocess: Literal["mat_crop", "migan_resize", "lama_crop"]
    mask_protocol: str
    domain: Literal["natural", "portrait"]  # picks the CFG scale (2.5 natural, 2.0 portrait)
    finetune: Literal["places2", "celebahq", "ffhq"]  # which fine-tuned weights evaluate it
    ood: bool = False  # zero-shot (Tab. 7)
    selection: Literal["first", "last", "seeded"] = "first"  # how n_images are chosen from the split


@dataclass(frozen=True)
class MaskConfig:
    """Stored mask sets (MASKS.md): one seed per project, one version per protocol."""

    seed: int = 2026
    workers: int = 1
    stats_n: int = 2000  # masks drawn per protocol for `moebius masks stats`
    train_protocols: tuple[str, ...] = ("mat_large_512", "lama_thick_512", "lama_medium_512")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture sizes (Sec. 3.2): `paper` is the official 226M / 862M pair; `smoke` is tiny."""

    preset: Literal["paper", "smoke"] = "paper"
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
        sources = {
            "vae": self.vae_source,
            "teacher": self.teacher_source,
            "pixelhacker": self.teacher_source,
            "student": self.student_source,
            "moebius": self.student_source,
        }
        if model not in sources:
            raise UnknownNameError.of("model with official weights", model, sources)
        return sources[model]  # type: ignore[return-value]


@dataclass(frozen=True)
class TrainConfig:
    """One training run: optimiser, schedule, batch (Sec. 4.1)."""

    steps: int = 138_000
    batch_size: int = 48  # per process and micro-step
    global_batch: int = 768  # reached by world size x accumulation
    lr: float = 2e-4
    lr_milestones: tuple[float, ...] = (111 / 138, 129 / 138)  # fractions of `steps`
    lr_gamma: float = 0.1
    weight_decay: float = 0.1
    optimizer: Literal["muon", "adamw"] = "muon"
    precision: Literal["bf16", "fp32", "auto"] = "auto"  # auto: bf16 where the device supports it
    grad_clip: float = 1.0
    checkpoint_every: int = 2000
    log_every: int = 50
    datasets: tuple[str, ...] = ("places365", "celebahq", "ffhq")
    timestep_sampling: Literal["lognorm", "uniform"] = "lognorm"  # official --lognorm_t
    noise_offset: float = 0.0357
    num_workers: int = 4
    gpus: int = 1  # processes torchrun launches (one per GPU); 1 runs plain, same code path


@dataclass(frozen=True)
class DistillConfig:
    """Adaptive multi-granularity distillation (Sec. 3.3, Eq. 4-5)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    # DEVIATION (paper §3.3): the official script uses plain gradient norms, clamps, epsilons and
    # static multipliers; `paper` is Eq. 4-5 as printed. Which one the paper's numbers used is unknown.
    balance: Literal["paper", "official"] = "paper"
    lambda_kd: float = 0.01  # official static multipliers (train_demo.sh); used by `official` only
    lambda_task: float = 0.5
    lambda_perceptual: float = 0.5
    perceptual: Literal["elatentlpips", "standin"] = "elatentlpips"
    losses: tuple[str, ...] = ("c_kd", "f_kd", "task", "perceptual")


@dataclass(frozen=True)
class FinetuneTarget:
    """Fine-tuning on one benchmark family (Sec. 4.1)."""

    datasets: tuple[str, ...]
    steps: int
    global_batch: int
    gpus: int = 1


@dataclass(frozen=True)
class FinetuneConfig:
    """Per-benchmark fine-tuning of the distilled student, and of the teacher when it is trained here."""

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

    steps: int = 18_000  # "18K-iteration checkpoint"
    experiments: tuple[int, ...] = tuple(range(1, 16))
    loss_combinations: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "c": ("c_kd",),
            "cf": ("c_kd", "f_kd"),
            "cft": ("c_kd", "f_kd", "task"),
            "cftp": ("c_kd", "f_kd", "task", "perceptual"),
        }
    )
    benchmark: str = "places2_test"


@dataclass(frozen=True)
class SampleConfig:
    """Inference as the official pipeline runs it: DDIM, 20 steps, LCG classifier-free guidance."""

    steps: int = 20
    cfg_natural: float = 2.5
    cfg_portrait: float = 2.0
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    # DEVIATION (official pipeline): it starts from the ground-truth latent noised to t≈900
    # (strength 0.99), so some ground truth leaks into the hole; `noise` starts from pure noise.
    start: Literal["noise", "gt_noised"] = "noise"
    strength: float = 0.99
    noise_offset: float = 0.0357
    paste_back: bool = True
    paste_blur: int = 0  # Gaussian blur radius (px) of the paste-back mask; 0 = hard composite
    batch_size: int = 8
    seed: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """FID / LPIPS as MAT computes them (MASKS.md, evaluation conventions)."""

    models: tuple[str, ...] = ("moebius", "pixelhacker", "flux_fill", "sd35_inpaint", "telea", "navier_stokes")
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    lpips_range: Literal["minus_one_one", "zero_one"] = "minus_one_one"
    hole_bins: int = 10  # LaMa-style per-hole-ratio bins
    bootstrap: int = 1000  # resamples for confidence intervals (0 = off)
    batch_size: int = 32
    flux_steps: int = 50
    sd35_steps: int = 28
    cfg_sweep: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {
            "places2_test": (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5),
            "celebahq512": (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
        }
    )


@dataclass(frozen=True)
class ProfileConfig:
    """Latency and compute (Tab. 1-3): batch 1, 512x512, ms per denoising step."""

    resolution: int = 512
    warmup: int = 3
    repeats: int = 10
    threads: int = 1  # CPU timing: pinned threads, medians (ENVIRONMENT.md)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    preset: Literal["paper", "smoke"] = "paper"  # profile the paper-size models even at smoke scale


@dataclass(frozen=True)
class WeightsConfig:
    """External weights: one local directory; stand-ins only where explicitly allowed."""

    dir: str = "weights"  # $MOEBIUS_WEIGHTS_DIR wins over it (moebius.weights.weights_root)
    allow_standin: bool = False


@dataclass(frozen=True)
class Config:
    """The whole run. `scale` is recorded in every result."""

    scale: Literal["smoke", "full"] = "full"
    seed: int = 0
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
        if name not in self.benchmarks:
            import difflib

            close = difflib.get_close_matches(name, list(self.benchmarks), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown benchmark {name!r}{hint}; configured: {', '.join(self.benchmarks)}")
        return self.benchmarks[name]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and build dataclasses; raise ConfigError."""
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
                return _convert(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item_tp, _) = typing.get_args(tp)
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        key_tp, val_tp = typing.get_args(tp)
        return {_convert(key_tp, k, where): _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null")
        return None
    if tp is float:
        # YAML writes 2e-4 as a string under YAML 1.1; accept ints and numeric strings explicitly.
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got a boolean")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover - a bug in this module


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        import difflib

        hint = difflib.get_close_matches(unknown[0], names, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{extra}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {f.name!r}")
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    """Build a `Config` from a (merged) mapping; unknown keys and wrong types are errors."""
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


def read_yaml(path: str | Path) -> dict:
    """Read one YAML config file; a syntax error becomes a one-line ConfigError."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(*paths: str | Path) -> Config:
    """Load and merge YAML files in order (later wins), then validate strictly."""
    merged: dict = {}
    for path in paths:
        merged = merge(merged, read_yaml(path))
    return config_from_dict(merged)


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


# ---------------------------------------------------------------------------------------------
# JSON schema (draft 2020-12), generated from the dataclasses
# ---------------------------------------------------------------------------------------------

SCHEMA_ID = "https://json-schema.org/draft/2020-12/schema"


def _schema_of(tp: Any) -> dict:
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
            "properties": {f.name: _schema_of(hints[f.name]) for f in fields},
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        return schema
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_of(a) for a in typing.get_args(tp)]}
    if origin is tuple:
        return {"type": "array", "items": _schema_of(typing.get_args(tp)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(typing.get_args(tp)[1])}
    if tp is type(None):
        return {"type": "null"}
    return {float: {"type": "number"}, int: {"type": "integer"}, str: {"type": "string"}, bool: {"type": "boolean"}}[
        tp
    ]


def json_schema() -> dict:
    """The JSON schema of `Config`, for Snakemake's `validate()`."""
    schema = _schema_of(Config)
    return {"$schema": SCHEMA_ID, "title": "moebius-repro config", **schema}
