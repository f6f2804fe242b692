"""Registry of the inpainting methods the paper compares against (Tab. 1, 3, 4), and how to run them.

Names are the ones ``EvalConfig.models`` uses; an unknown name gets a "did you mean" hint.
- ``moebius`` / ``pixelhacker``: our student / teacher, loaded from a run folder (``load_run``) and
  sampled by ``moebius.diffusion.inpaint_batch``; ``inpaint_benchmark`` handles them itself.
- ``flux_fill`` (FLUX.1-Fill-Dev, 50 steps) and ``sd35_inpaint`` (SD3.5 Large inpainting, 28 steps):
  diffusers' ``FluxFillPipeline`` / ``StableDiffusion3InpaintPipeline``. Full scale loads the
  published pipeline folders through ``moebius.weights``; smoke scale builds the same classes from
  config dicts with tiny random components and no tokenizers / text encoders (fixed-seed
  precomputed prompt embeddings instead), only to exercise the code path: weights_kind ``standin``.
- ``telea`` / ``navier_stokes``: OpenCV's ``cv2.inpaint`` (Telea 2004; Bertalmio et al. 2001),
  real at every scale. They have no learned weights; we record weights_kind ``official`` for them,
  meaning "the method itself, as published", since nothing was trained or substituted.
- ``mat``: MAT (Li et al. 2022), our re-implementation ``moebius.eval.mat`` running the official
  checkpoints converted to safetensors (``moebius weights convert-mat``), one per fine-tuning target
  (``target``: places2 / celebahq / ffhq); smoke scale runs a reduced-width stand-in (``standin``).
- ``lama`` / ``migan``: no checkpoint loader here; their numbers are the paper's
  (reported) and ``can_run`` says so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from moebius.config import Config
from moebius.device import resolve_device
from moebius.diffusion.seeding import image_generators
from moebius.errors import EvalError, WeightError
from moebius.registry import Registry

Inpainter = Callable[[torch.Tensor, torch.Tensor, list[int], float | None], torch.Tensor]
"""(images (B,3,H,W) in [-1,1], masks (B,1,H,W) 1 = hole, seeds, guidance) → images in [-1,1]."""


@dataclass(frozen=True)
class BaselineSpec:
    """One method of the comparison tables."""

    name: str
    display: str  # as the paper's tables print it
    kind: Literal["diffusion", "non-diffusion"]
    family: Literal["ours", "diffusers", "classical", "reported", "mat"]  # how it runs here
    weights_source: str
    steps: int | None  # denoising steps at inference (None: not iterative)
    default_guidance: float | None  # guidance when the caller gives none (ours: from the domain)
    weight_key: str | None = None  # moebius.weights key of the pipeline folder
    note: str = ""


BASELINES: Registry[BaselineSpec] = Registry("baseline", (
    (s.name, s)
    for s in (
        BaselineSpec("moebius", "Moebius", "diffusion", "ours", "hf:hustvl/Moebius (full) / trained here (smoke)",
                     20, None),
        BaselineSpec("pixelhacker", "PixelHacker", "diffusion", "ours",
                     "hf:hustvl/PixelHacker (full) / trained here (smoke)", 20, None),
        # Guidance: diffusers' FluxFillPipeline default (30, the value BFL's model card uses for Fill).
        BaselineSpec("flux_fill", "FLUX.1-Fill-Dev", "diffusion", "diffusers", "hf:black-forest-labs/FLUX.1-Fill-dev",
                     50, 30.0, weight_key="flux_fill_dev"),
        # Guidance: the SD3.5 Large model card's 3.5 at 28 steps (the paper does not state it).
        BaselineSpec("sd35_inpaint", "SD3.5 Large-Inpainting", "diffusion", "diffusers",
                     "hf:stabilityai/stable-diffusion-3.5-large", 28, 3.5, weight_key="sd35_large_inpainting"),
        BaselineSpec("telea", "OpenCV Telea", "non-diffusion", "classical", "none (cv2.INPAINT_TELEA)", None, None,
                     note="not in the paper; a classical floor for the smoke tables"),
        BaselineSpec("navier_stokes", "OpenCV Navier-Stokes", "non-diffusion", "classical", "none (cv2.INPAINT_NS)",
                     None, None, note="not in the paper; a classical floor for the smoke tables"),
        BaselineSpec("lama", "LaMa", "non-diffusion", "reported", "reported in the paper", None, None,
                     note="no checkpoint loader here: numbers from the paper's tables"),
        BaselineSpec("mat", "MAT", "non-diffusion", "mat",
                     "github:fenglinglwb/MAT checkpoints, converted (moebius weights convert-mat)", None, None,
                     note="moebius.eval.mat; checkpoint per fine-tuning target"),
        BaselineSpec("migan", "MI-GAN", "non-diffusion", "reported", "reported in the paper", None, None,
                     note="no checkpoint loader here: numbers from the paper's tables"),
    )
))

CV2_RADIUS = 3  # px neighbourhood of cv2.inpaint (OpenCV's documented example value)


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
# Where the weights come from
# ---------------------------------------------------------------------------------------------


def _resolve_pipeline(cfg: Config, spec: BaselineSpec) -> tuple[str | None, str]:
    """(local pipeline folder or None, weights_kind) for a diffusers baseline."""
    if cfg.scale == "smoke":
        if not cfg.weights.allow_standin:
            raise EvalError(f"{spec.name}: smoke scale runs a tiny stand-in pipeline; set weights.allow_standin")
        return None, "standin"
    from moebius import weights as registry

    try:
        path, kind = registry.resolve_or_standin(spec.weight_key, cfg.weights.allow_standin, cfg.weights.dir)
    except registry.WeightError as exc:
        raise EvalError(f"{spec.name}: {exc}") from exc
    return (str(path) if path is not None else None), kind


def weights_kind(cfg: Config, name: str, target: str | None = None) -> str:
    """``official`` | ``standin`` for the non-Moebius methods (ours come from the run's meta)."""
    spec = get_baseline(name)
    if spec.family == "mat":  # per fine-tuning target: the inpainter knows what it loaded
        return load_baseline(cfg, name, target=target).weights_kind
    if spec.family == "classical":
        return "official"  # no learned weights: the published method itself (module docstring)
    if spec.family == "diffusers":
        return _resolve_pipeline(cfg, spec)[1]
    raise EvalError(f"{name}: weights kind comes from its run folder (ours) or the paper (reported)")


def can_run(name: str, cfg: Config) -> tuple[bool, str]:
    """Whether ``name`` can produce images here, and why not."""
    spec = get_baseline(name)
    if spec.family == "reported":
        return False, f"{spec.display}: {spec.note}"
    if spec.family == "mat" and cfg.scale == "smoke" and not cfg.weights.allow_standin:
        return False, f"{spec.display}: smoke scale runs a stand-in; set weights.allow_standin"
    if spec.family == "diffusers":
        try:
            _resolve_pipeline(cfg, spec)
        except EvalError as exc:
            return False, str(exc)
    return True, ""


# ---------------------------------------------------------------------------------------------
# Classical: OpenCV
# ---------------------------------------------------------------------------------------------


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) [-1,1] → (B,H,W,3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) uint8 → (B,3,H,W) [-1,1]."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _cv2_inpainter(flag_name: str) -> Inpainter:
    import cv2

    flag = getattr(cv2, flag_name)

    def run(images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        pixels = _to_uint8(images)
        holes = ((masks[:, 0] > 0.5).cpu().numpy().astype(np.uint8)) * 255  # (B,H,W), nonzero = fill
        out = np.stack([cv2.inpaint(np.ascontiguousarray(p), h, CV2_RADIUS, flag) for p, h in zip(pixels, holes)])
        return _from_uint8(out).to(images.device)

    return run


# ---------------------------------------------------------------------------------------------
# Diffusers pipelines
# ---------------------------------------------------------------------------------------------

_TINY_SEED = 0
_TINY_TEXT_LEN = 8


def _tiny_vae(latent_channels: int):
    from diffusers import AutoencoderKL

    # Factor-2 VAE (two levels) so that 32-64 px images give 16-32 px latents.
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=4, sample_size=32,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    )


def _tiny_flux_fill():
    """FluxFillPipeline with tiny random components; in_channels = packed latent + masked latent + mask."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )

    c, f = 4, 2  # latent channels, VAE factor
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=8 * c + 4 * f * f, out_channels=4 * c, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=(4, 4, 8),
    )
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=_tiny_vae(c), text_encoder=None, tokenizer=None,
        text_encoder_2=None, tokenizer_2=None, transformer=transformer,
    )
    g = torch.Generator().manual_seed(_TINY_SEED + 1)
    embeds = {
        "prompt_embeds": torch.randn(1, _TINY_TEXT_LEN, 32, generator=g),
        "pooled_prompt_embeds": torch.randn(1, 32, generator=g),
    }
    return pipe, embeds


def _tiny_sd3_inpaint():
    """StableDiffusion3InpaintPipeline with a tiny 16-channel transformer (the latent-blending mode)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3InpaintPipeline,
    )

    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=16, num_layers=1, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=16,
    )
    pipe = StableDiffusion3InpaintPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_tiny_vae(16),
        text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None, text_encoder_3=None,
        tokenizer_3=None,
    )
    g = torch.Generator().manual_seed(_TINY_SEED + 2)
    embeds = {
        "prompt_embeds": torch.randn(1, _TINY_TEXT_LEN, 32, generator=g),
        "pooled_prompt_embeds": torch.randn(1, 64, generator=g),
        # The "empty prompt" branch of CFG: zeros of the same shapes.
        "negative_prompt_embeds": torch.zeros(1, _TINY_TEXT_LEN, 32),
        "negative_pooled_prompt_embeds": torch.zeros(1, 64),
    }
    return pipe, embeds


def _build_pipeline(cfg: Config, spec: BaselineSpec):
    """(pipeline, precomputed embeddings or None) for a diffusers baseline at this scale."""
    path, _ = _resolve_pipeline(cfg, spec)
    if path is None:
        with torch.random.fork_rng(devices=[]):  # fixed random init without touching the global RNG
            torch.manual_seed(_TINY_SEED)
            return _tiny_flux_fill() if spec.name == "flux_fill" else _tiny_sd3_inpaint()
    from diffusers import FluxFillPipeline, StableDiffusion3InpaintPipeline

    cls = FluxFillPipeline if spec.name == "flux_fill" else StableDiffusion3InpaintPipeline
    device = resolve_device("auto")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return cls.from_pretrained(path, torch_dtype=dtype).to(device), None


def _diffusers_inpainter(cfg: Config, spec: BaselineSpec) -> Inpainter:
    pipe, embeds = _build_pipeline(cfg, spec)
    pipe.set_progress_bar_config(disable=True)
    steps = steps_for(cfg, spec.name)

    def run(images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        b, _, h, w = images.shape
        g = spec.default_guidance if guidance is None else float(guidance)
        kwargs: dict = {}
        if embeds is None:
            kwargs["prompt"] = [""] * b  # text-free inpainting: the empty prompt
        else:
            kwargs.update({k: v.expand(b, *v.shape[1:]).to(pipe.device) for k, v in embeds.items()})
        if spec.name == "sd35_inpaint":
            kwargs["strength"] = 1.0  # start from pure noise: the pipeline's default 0.6 keeps the hole's content
        out = pipe(
            image=((images.float() + 1.0) / 2.0).clamp(0, 1),  # diffusers takes tensors in [0, 1]
            mask_image=(masks > 0.5).float(),
            height=h, width=w, num_inference_steps=steps, guidance_scale=g,
            generator=image_generators(seeds), output_type="pt", **kwargs,
        ).images  # (B,3,H,W) in [0, 1]
        return (out.float() * 2.0 - 1.0).clamp(-1, 1).to(images.device)

    return run


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------

_LOADED: dict[tuple, Inpainter] = {}


def load_baseline(cfg: Config, name: str, target: str | None = None) -> Inpainter:
    """Build (once per process and setting) the inpainter of a non-Moebius method; ``target`` (the
    benchmark's fine-tuning target) picks the checkpoint of methods that have one per domain (MAT)."""
    spec = get_baseline(name)
    if spec.family == "ours":
        raise EvalError(f"{name} is one of our models: run it with inpaint_benchmark and a run folder")
    ok, why = can_run(name, cfg)
    if not ok:
        raise EvalError(f"cannot run {name}: {why}")
    from moebius.weights import weights_root

    key = (name, cfg.scale, str(weights_root(cfg.weights.dir)), cfg.weights.allow_standin, steps_for(cfg, name))
    if spec.family == "mat":
        key += (target,)
    if key not in _LOADED:
        if spec.family == "mat":
            from moebius.eval.mat import load_mat_inpainter

            try:
                _LOADED[key] = load_mat_inpainter(cfg.scale, cfg.weights.allow_standin, cfg.weights.dir, target)
            except WeightError as exc:
                raise EvalError(f"{name}: {exc}") from exc
        elif spec.family == "classical":
            _LOADED[key] = _cv2_inpainter("INPAINT_TELEA" if name == "telea" else "INPAINT_NS")
        else:
            _LOADED[key] = _diffusers_inpainter(cfg, spec)
    return _LOADED[key]


def run_baseline(
    cfg: Config, name: str, images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None = None,
    target: str | None = None,
) -> torch.Tensor:
    """Inpaint with a non-Moebius method: images (B,3,H,W) [-1,1], masks (B,1,H,W) 1 = hole → [-1,1]."""
    if images.ndim != 4 or images.shape[1] != 3 or masks.shape != (images.shape[0], 1, *images.shape[2:]):
        raise EvalError(f"images (B,3,H,W) and masks (B,1,H,W) must match, got {tuple(images.shape)}, "
                        f"{tuple(masks.shape)}")
    if len(seeds) != images.shape[0]:
        raise EvalError(f"need one seed per image: {len(seeds)} seeds for {images.shape[0]} images")
    with torch.inference_mode():
        return load_baseline(cfg, name, target=target)(images, masks, seeds, guidance)
