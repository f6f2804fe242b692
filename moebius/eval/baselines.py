"""Registry of the inpainting methods the paper compares against (Tab. 1, 3, 4, 7), and how to run them.

One table, ``BASELINES``: a method's paper name, what runs it (``runner``, "module:function" building
its inpainter), the weight files it needs per benchmark (``checkpoints``) and the benchmarks where the
paper has its row (``benchmarks``). Names are the ones ``EvalConfig.models`` uses; an unknown name
gets a "did you mean" hint. This module imports neither torch nor the runners (Snakemake reads it
while it parses the DAG); the runners live in ``baseline_*.py``.

- ``moebius`` / ``pixelhacker``: our student / teacher, loaded from a run folder (``load_run``) and
  sampled by ``moebius.diffusion.inpaint_batch``; ``inpaint_benchmark`` handles them itself.
- ``flux_fill`` (FLUX.1-Fill-Dev, 50 steps), ``sd35_inpaint`` (SD3.5 Large inpainting, 28 steps) and
  ``sd15_inpaint`` (the paper's "SD" row: SD 1.5 inpainting, 50 steps): diffusers pipelines
  (``baseline_diffusers``).
- ``lama`` (big-lama), ``migan`` (MI-GAN) and ``comodgan`` (CoModGAN, MI-GAN's PyTorch port):
  feed-forward generators in their published TorchScript format (``baseline_torchscript``).
- ``mat`` (MAT, Li et al. 2022): our re-implementation ``moebius.eval.mat`` running the official
  checkpoints converted to safetensors (``moebius weights convert-mat``), one per fine-tuning target
  (``baseline_mat``).
- ``telea`` / ``navier_stokes``: OpenCV's ``cv2.inpaint`` (``baseline_classical``), real at every
  scale. They have no learned weights; we record weights_kind ``official`` for them, meaning "the
  method itself, as published", since nothing was trained or substituted.

Scales: full scale loads the published files through ``moebius.weights`` (a missing one is the
registry's one-line error); a file that the weights directory's ledger of generated (rehearsal) files
lists is recorded as weights_kind ``generated``, never ``official`` (``moebius.weights.weight_kind``).
Smoke scale runs the same loaders on stand-in files generated in the
sampling job, in the same formats (a TorchScript archive with the same call signature; a diffusers
pipeline folder; MAT safetensors with the official keys), from fixed seeds, at the benchmark's smoke
size: weights_kind ``standin``.

Native resolution: a checkpoint with a ``size`` runs at that size (MAT, MI-GAN and CoModGAN are
fixed-size networks; SD 1.5 is trained at 512), so a benchmark of another size is resized to it and
back, as their own evaluation scripts do; ``inpaint_benchmark`` records the resize. At smoke scale
the size shrinks with the benchmark (a 512-px protocol run at 64 px runs a "512" checkpoint at 64).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from moebius.config import Config, ConfigError
from moebius.errors import EvalError
from moebius.registry import Registry

if TYPE_CHECKING:  # torch is imported by the runners only
    import torch

Inpainter = Callable[["torch.Tensor", "torch.Tensor", list[int], float | None], "torch.Tensor"]
"""(images (B,3,H,W) in [-1,1], masks (B,1,H,W) 1 = hole, seeds, guidance) → images in [-1,1]."""

TARGETS = ("places2", "celebahq", "ffhq")  # BenchmarkConfig.finetune: the training data a benchmark expects


@dataclass(frozen=True)
class Checkpoint:
    """One weight file of a method, and the benchmarks (by fine-tuning target) it serves."""

    key: str  # moebius.weights key
    size: int | None  # native side in px at full scale; None: runs at the benchmark's own size
    targets: tuple[str, ...] = TARGETS
    note: str = ""  # recorded in every sample folder made with it (e.g. a DEVIATION)


@dataclass(frozen=True)
class BaselineSpec:
    """One method of the comparison tables."""

    name: str
    display: str  # as the paper's tables print it
    kind: Literal["diffusion", "non-diffusion"]
    family: Literal["ours", "diffusers", "classical", "torchscript", "mat", "reported"]  # how it runs here
    weights_source: str
    steps: int | None  # denoising steps at inference (None: not iterative)
    default_guidance: float | None  # guidance when the caller gives none (ours: from the domain)
    weight_key: str | None = None  # moebius.weights key when one file serves every benchmark
    note: str = ""
    runner: str | None = None  # "module:function", called as function(cfg, spec, checkpoint, size) -> Loaded
    checkpoints: tuple[Checkpoint, ...] = ()  # per-benchmark files (weight_key is the one-file shorthand)
    benchmarks: tuple[str, ...] | None = None  # where the paper has this method's cells; None: every one
    paste_back: str = ""  # what the method's own inference does with the known pixels


class Loaded(NamedTuple):
    """What a runner returns: the inpainter and where its weights came from (recorded in meta.json)."""

    run: Inpainter
    provenance: dict[str, Any]


_HARNESS = "the harness composites every output with the known pixels (output·hole + input·known)"
_NO_PASTE = f"none in the pipeline (its VAE re-encodes the known region); {_HARNESS}"
_GAN_PASTE = (f"MI-GAN scripts/evaluate_fid_lpips.py: mask·image + (1−mask)·output at the model's size; "
              f"{_HARNESS} after resizing back")
_RESEARCH = "academic rows of Tab. 3/4/7"

BASELINES: Registry[BaselineSpec] = Registry("baseline", (
    (s.name, s)
    for s in (
        BaselineSpec("moebius", "Moebius", "diffusion", "ours", "hf:hustvl/Moebius (full) / trained here (smoke)",
                     20, None, paste_back="the sampler's paste-back (sample.paste_back)"),
        BaselineSpec("pixelhacker", "PixelHacker", "diffusion", "ours",
                     "hf:hustvl/PixelHacker (full) / trained here (smoke)", 20, None,
                     paste_back="the sampler's paste-back (sample.paste_back)"),
        # Guidance: diffusers' FluxFillPipeline default (30, the value BFL's model card uses for Fill).
        BaselineSpec("flux_fill", "FLUX.1-Fill-Dev", "diffusion", "diffusers", "hf:black-forest-labs/FLUX.1-Fill-dev",
                     50, 30.0, weight_key="flux_fill_dev", runner="moebius.eval.baseline_diffusers:load",
                     paste_back=_NO_PASTE),
        # Guidance: the SD3.5 Large model card's 3.5 at 28 steps (the paper does not state it).
        BaselineSpec("sd35_inpaint", "SD3.5 Large-Inpainting", "diffusion", "diffusers",
                     "hf:stabilityai/stable-diffusion-3.5-large", 28, 3.5, weight_key="sd35_large_inpainting",
                     runner="moebius.eval.baseline_diffusers:load", paste_back=_NO_PASTE),
        BaselineSpec("telea", "OpenCV Telea", "non-diffusion", "classical", "none (cv2.INPAINT_TELEA)", None, None,
                     note="not in the paper; a classical floor for the smoke tables",
                     runner="moebius.eval.baseline_classical:load", paste_back="cv2.inpaint keeps known pixels"),
        BaselineSpec("navier_stokes", "OpenCV Navier-Stokes", "non-diffusion", "classical", "none (cv2.INPAINT_NS)",
                     None, None, note="not in the paper; a classical floor for the smoke tables",
                     runner="moebius.eval.baseline_classical:load", paste_back="cv2.inpaint keeps known pixels"),
        # LaMa (Suvorov et al. 2022), big-lama: Places2-trained, fully convolutional, so it runs at the
        # benchmark's size (LaMa's predict.py pads to a multiple of 8 and crops back).
        BaselineSpec(
            "lama", "LaMa", "non-diffusion", "torchscript", "big-lama (advimman/lama) as TorchScript big-lama.pt",
            None, None, runner="moebius.eval.baseline_torchscript:load",
            checkpoints=(
                Checkpoint("lama_big_lama", None, ("places2",)),
                # DEVIATION (paper Tab. 4): the paper's LaMa portrait cells are copied from the literature
                # (†); LaMa's face models exist only as pickled Lightning checkpoints, which we do not
                # unpickle, so the Places2 big-lama fills the portraits.
                Checkpoint("lama_big_lama", None, ("celebahq", "ffhq"),
                           note="DEVIATION: Places2 big-lama on portraits (no loadable LaMa face checkpoint)"),
            ),
            benchmarks=("places2_test", "places2_256", "celebahq512", "ffhq256"),
            paste_back="LaMa bin/to_jit.py's model returns mask·predicted + (1−mask)·image; bin/predict.py "
                       f"crops the padding and saves uint8 by truncation (done here too); {_HARNESS}",
        ),
        # MAT (Li et al. 2022): one 512-px network per training set; the paper has its cells on every
        # benchmark of Tab. 3, 4 and 7. Tab. 7's zero-shot cells use the Places2 (LVIS) and CelebA-HQ
        # (DeepFakeFace) models, as the benchmarks' fine-tuning targets say.
        BaselineSpec(
            "mat", "MAT", "non-diffusion", "mat",
            "github:fenglinglwb/MAT checkpoints, converted to safetensors (moebius weights convert-mat)", None, None,
            runner="moebius.eval.baseline_mat:load",
            checkpoints=(Checkpoint("mat_places512", 512, ("places2",)),
                         Checkpoint("mat_celebahq512", 512, ("celebahq",)),
                         Checkpoint("mat_ffhq512", 512, ("ffhq",))),
            benchmarks=("places2_test", "places2_large", "places2_small", "places2_256", "celebahq512", "ffhq256",
                        "lvis", "deepfakeface"),
            paste_back=f"MAT's two stages each return output·hole + image·known (networks/mat.py); {_HARNESS} "
                       "after resizing back",
        ),
        # MI-GAN (Sargsyan et al. 2023): one fixed-size network per (dataset, resolution); none for
        # CelebA-HQ, where the paper has no MI-GAN cell either. Tab. 7's LVIS cell uses the Places2 512.
        BaselineSpec(
            "migan", "MI-GAN", "non-diffusion", "torchscript",
            "Picsart-AI-Research/MI-GAN releases, traced to TorchScript as its export script does", None, None,
            runner="moebius.eval.baseline_torchscript:load",
            checkpoints=(Checkpoint("migan_512_places2", 512, ("places2",)),
                         Checkpoint("migan_256_places2", 256, ("places2",)),
                         Checkpoint("migan_256_ffhq", 256, ("ffhq",))),
            benchmarks=("places2_test", "places2_256", "ffhq256", "lvis"),
            paste_back=_GAN_PASTE,
        ),
        # CoModGAN (Zhao et al. 2021) as ported and released by MI-GAN (same format, same call
        # signature; stochastic: z and the noise inputs are drawn from the image's seed).
        BaselineSpec(
            "comodgan", "CoModGAN", "non-diffusion", "torchscript",
            "CoModGAN checkpoints of the MI-GAN release, traced to TorchScript", None, None,
            runner="moebius.eval.baseline_torchscript:load",
            checkpoints=(
                # DEVIATION (paper Tab. 4): the paper's CoModGAN cell (CelebA-HQ 512, †) comes from the
                # literature; no CelebA-HQ CoModGAN is published in a loadable format, so MI-GAN's FFHQ
                # 256 CoModGAN (the nearest portrait model) runs at its native 256 and is resized back.
                Checkpoint("comodgan_256_ffhq", 256, ("celebahq", "ffhq"),
                           note="DEVIATION: FFHQ-256 CoModGAN (MI-GAN release) on CelebA-HQ, resized 512→256→512"),
            ),
            benchmarks=("celebahq512",),
            paste_back=_GAN_PASTE,
        ),
        # The paper's "SD" [32]: Tab. 3 lists 0.860 B parameters and cites PowerPaint's numbers; the
        # SD 1.x inpainting UNet has 859.5 M (SD 2 inpainting: 865.9 M), and PowerPaint builds on and
        # compares with SD 1.5 inpainting (runwayml/stable-diffusion-inpainting). Diffusers' defaults:
        # 50 steps, guidance 7.5, strength 1.0; empty prompt (text-free inpainting, as for FLUX/SD3.5).
        BaselineSpec(
            "sd15_inpaint", "SD", "diffusion", "diffusers", "hf:stable-diffusion-v1-5/stable-diffusion-inpainting",
            50, 7.5, runner="moebius.eval.baseline_diffusers:load",
            checkpoints=(Checkpoint("sd15_inpainting", 512),),
            benchmarks=("places2_test", "celebahq512", "ffhq256"),
            paste_back=_NO_PASTE,
        ),
    )
))


# Ablation runs (Table 2: exp1..exp15; Table 5: loss_c..loss_cftp) are our own trained models too:
# sampled exactly like Moebius, from their run folder.
_ABLATION_RUN = re.compile(r"exp([1-9]|1[0-5])|loss_(c|cf|cft|cftp)")


def get_baseline(name: str) -> BaselineSpec:
    """The spec of ``name``; ``UnknownNameError`` with a "did you mean" hint otherwise."""
    if _ABLATION_RUN.fullmatch(name):
        return dataclasses.replace(BASELINES["moebius"], name=name, display=f"Moebius ablation {name}",
                                   weights_source="trained here (Tables 2 and 5)")
    return BASELINES.get(name)


def steps_for(cfg: Config, name: str) -> int | None:
    """Denoising steps from the config (``eval.flux_steps`` / ``sd35_steps`` / ``sample.steps``)."""
    spec = get_baseline(name)
    if name == "flux_fill":
        return cfg.eval.flux_steps
    if name == "sd35_inpaint":
        return cfg.eval.sd35_steps
    if spec.family == "ours":
        return cfg.sample.steps
    return spec.steps


# ---------------------------------------------------------------------------------------------
# Which file serves which benchmark, at which size
# ---------------------------------------------------------------------------------------------


def _checkpoints(spec: BaselineSpec) -> tuple[Checkpoint, ...]:
    if spec.weight_key is not None:
        return (Checkpoint(spec.weight_key, None),)
    return spec.checkpoints


def _paper_size(cfg: Config, benchmark: str) -> tuple[int, int]:
    """(benchmark size here, its protocol's native size): the smoke scale shrinks the second to the first."""
    from moebius.masks import get_protocol

    try:
        bench = cfg.benchmark(benchmark)
    except ConfigError as exc:
        raise EvalError(str(exc)) from exc
    try:
        return bench.size, get_protocol(bench.mask_protocol).size
    except Exception as exc:  # MaskError (unknown protocol): a config that names no known protocol
        raise EvalError(f"benchmark {benchmark}: {exc}") from exc


def checkpoint_for(cfg: Config, name: str, benchmark: str | None) -> Checkpoint | None:
    """The weight file of ``name`` for ``benchmark``; None for methods without weights.

    Among the files for the benchmark's fine-tuning target, the one whose native size is the
    benchmark's protocol size, else the nearest (a resize, recorded). ``EvalError`` when no file
    serves the benchmark (e.g. MI-GAN on CelebA-HQ: none is published).
    """
    spec = get_baseline(name)
    options = _checkpoints(spec)
    if not options:
        return None
    if len(options) == 1 and set(options[0].targets) == set(TARGETS):
        return options[0]  # one file for every benchmark: the benchmark need not be known
    if benchmark is None:
        raise EvalError(f"{name}: which weights to use depends on the benchmark; give one")
    try:
        target = cfg.benchmark(benchmark).finetune
    except ConfigError as exc:
        raise EvalError(str(exc)) from exc
    fits = [c for c in options if target in c.targets]
    if not fits:
        raise EvalError(f"{name}: no published {spec.display} checkpoint serves {target} benchmarks "
                        f"such as {benchmark}; the paper has no cell there either")
    if all(c.size is None for c in fits):
        return fits[0]
    _, paper = _paper_size(cfg, benchmark)
    return min(fits, key=lambda c: (abs(math.log((c.size or paper) / paper)), -(c.size or paper)))


def work_size(cfg: Config, name: str, benchmark: str) -> int | None:
    """The side the method runs at on ``benchmark`` (None: the benchmark's own size)."""
    ckpt = checkpoint_for(cfg, name, benchmark)
    if ckpt is None or ckpt.size is None:
        return None
    size, paper = _paper_size(cfg, benchmark)
    scaled = ckpt.size * size / paper
    if scaled != int(scaled) or scaled < 8:
        raise EvalError(f"{name}: a {ckpt.size}-px checkpoint on {benchmark} ({size} px for a {paper}-px "
                        f"protocol) would run at {scaled:g} px")
    return int(scaled)


def runs_on(cfg: Config, name: str, benchmark: str) -> bool:
    """Whether ``name`` is sampled on ``benchmark``: where the paper has its cell and a file serves it."""
    spec = get_baseline(name)
    if spec.benchmarks is not None and benchmark not in spec.benchmarks:
        return False
    try:
        checkpoint_for(cfg, name, benchmark)
    except EvalError:
        return False
    return True


def benchmarks_for(cfg: Config, name: str, benchmarks: list[str]) -> list[str]:
    """The subset of ``benchmarks`` that ``name`` is sampled on (Snakemake's suites use this)."""
    return [b for b in benchmarks if runs_on(cfg, name, b)]


# ---------------------------------------------------------------------------------------------
# Where the weights come from
# ---------------------------------------------------------------------------------------------


def resolve(cfg: Config, name: str, key: str) -> tuple[str | None, str]:
    """(local path or None, weights_kind) of weight ``key`` for method ``name``.

    Smoke scale always runs stand-ins (offline by design); full scale the published file, or a
    stand-in where ``weights.allow_standin`` says so. A missing file is the registry's one line.
    """
    if cfg.scale == "smoke":
        if not cfg.weights.allow_standin:
            raise EvalError(f"{name}: smoke scale runs a tiny stand-in of its weights; set weights.allow_standin")
        return None, "standin"
    from moebius import weights as registry

    try:
        # cfg.weights.dir as given: moebius.weights.weights_root decides ($MOEBIUS_WEIGHTS_DIR wins)
        path, kind = registry.resolve_or_standin(key, cfg.weights.allow_standin, cfg.weights.dir)
    except registry.WeightError as exc:
        raise EvalError(f"{name}: {exc}") from exc
    return (str(path) if path is not None else None), kind


def weights_kind(cfg: Config, name: str, benchmark: str | None = None) -> str:
    """``official`` | ``generated`` | ``standin`` for the non-Moebius methods (ours come from the run's meta)."""
    spec = get_baseline(name)
    if spec.family == "classical":
        return "official"  # no learned weights: the published method itself (module docstring)
    if spec.family in ("ours", "reported"):
        raise EvalError(f"{name}: weights kind comes from its run folder (ours) or the paper (reported)")
    ckpt = checkpoint_for(cfg, name, benchmark)
    return resolve(cfg, name, ckpt.key)[1] if ckpt is not None else "official"


def can_run(name: str, cfg: Config, benchmark: str | None = None) -> tuple[bool, str]:
    """Whether ``name`` can produce images here (on ``benchmark``), and why not."""
    spec = get_baseline(name)
    if spec.family == "reported" or spec.runner is None:
        return False, f"{spec.display}: {spec.note or 'reported in the paper only'}"
    if spec.family == "ours":
        return True, ""
    try:
        ckpt = checkpoint_for(cfg, name, benchmark)
        if ckpt is not None:
            resolve(cfg, name, ckpt.key)
    except EvalError as exc:
        return False, str(exc)
    return True, ""


def sample_settings(cfg: Config, name: str, benchmark: str | None) -> dict[str, Any]:
    """What a sample folder records about how this method ran (checkpoint, native size, paste-back)."""
    spec = get_baseline(name)
    ckpt = checkpoint_for(cfg, name, benchmark)
    out: dict[str, Any] = {"paste_back": spec.paste_back}
    if ckpt is not None:
        out.update(checkpoint=ckpt.key, native_size=ckpt.size)
        if ckpt.note:
            out["checkpoint_note"] = ckpt.note
    return out


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------

_LOADED: dict[tuple, Loaded] = {}


def _load(cfg: Config, name: str, benchmark: str | None) -> Loaded:
    spec = get_baseline(name)
    if spec.family == "ours":
        raise EvalError(f"{name} is one of our models: run it with inpaint_benchmark and a run folder")
    ok, why = can_run(name, cfg, benchmark)
    if not ok:
        raise EvalError(f"cannot run {name}: {why}")
    from moebius.weights import weights_root

    ckpt = checkpoint_for(cfg, name, benchmark)
    size = work_size(cfg, name, benchmark) if benchmark is not None and ckpt is not None else None
    key = (name, ckpt, size, cfg.scale, str(weights_root(cfg.weights.dir)), cfg.weights.allow_standin,
           steps_for(cfg, name))
    if key not in _LOADED:
        module, function = spec.runner.split(":")
        build = getattr(importlib.import_module(module), function)
        _LOADED[key] = build(cfg, spec, ckpt, size)
    return _LOADED[key]


def load_baseline(cfg: Config, name: str, benchmark: str | None = None) -> Inpainter:
    """Build (once per process and setting) the inpainter of a non-Moebius method for ``benchmark``."""
    return _load(cfg, name, benchmark).run


def provenance(cfg: Config, name: str, benchmark: str | None = None) -> dict[str, Any]:
    """Where the loaded weights came from: file, kind, digests (recorded in meta.json on first use)."""
    return dict(_load(cfg, name, benchmark).provenance)


def run_baseline(
    cfg: Config, name: str, images: torch.Tensor, masks: torch.Tensor, seeds: list[int],
    guidance: float | None = None, benchmark: str | None = None,
) -> torch.Tensor:
    """Inpaint with a non-Moebius method: images (B,3,H,W) [-1,1], masks (B,1,H,W) 1 = hole → [-1,1]."""
    import torch

    if images.ndim != 4 or images.shape[1] != 3 or masks.shape != (images.shape[0], 1, *images.shape[2:]):
        raise EvalError(f"images (B,3,H,W) and masks (B,1,H,W) must match, got {tuple(images.shape)}, "
                        f"{tuple(masks.shape)}")
    if len(seeds) != images.shape[0]:
        raise EvalError(f"need one seed per image: {len(seeds)} seeds for {images.shape[0]} images")
    with torch.inference_mode():
        return load_baseline(cfg, name, benchmark)(images, masks, seeds, guidance)
