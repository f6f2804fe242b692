"""Inpaint one photo of any size: ``moebius inpaint IMAGE --mask MASK.png --out OUT.png`` (issue 16).

The benchmark path, for one image a user brings. The model and its VAE are loaded as the benchmarks
load them (``inpaint.load_ours`` for a run folder; ``moebius.train.official.load_official`` for the
official files, resolved through ``moebius.weights``), one batch is sampled by the same functions
(``moebius.diffusion.inpaint_batch`` with each model's benchmark settings, ``model_sampling``: its
start, strength, guidance and paste-back; ``baselines.run_baseline`` for every other method), and the
output is composited onto the photo's own known pixels (``composite``).

Size (``fit``). Our models run at one square size (latent size × VAE factor: 512 px, 64 px at smoke
scale), MAT at 512 px; the diffusers pipelines take any multiple of 16 px, OpenCV any size.

- ``pad`` (default) keeps the aspect ratio. For a fixed-size model the photo is scaled (bicubic,
  antialiased when shrinking: ``inpaint.resize_images``) until its longer side is the model's side,
  then image and mask are both extended to the square, at the bottom and right, by repeating their
  edge pixels: where the edge is hole the padding is hole too, so the content of a hole never reaches
  the model as context. For a model of free size the photo is only extended to the next multiple.
- ``resize`` stretches the photo to the model's square (or to the nearest multiple), aspect ignored.

The output is cropped, resized back to the photo's size and composited with the photo's own mask:
every known pixel is the photo's, bit for bit; only the hole carries model pixels (including, for
Moebius, the blurred paste-back's blend at the hole's edge, made at the model's size). At the model's
size a pixel is hole when it covers any hole pixel of the photo (area coverage > 0), not when its
nearest sample is: a thin stroke must not vanish when a 4000-px photo shrinks to 512 px, since the
composite takes every hole pixel of the photo from the model's output. What was done is written to
the sidecar ``OUT.png.json`` (and returned).

Mask polarity. The mask is read as grey and binarised at 128 ("white" = 128 and above).
``255_hole``: white is the hole, the project's convention (DESIGN.md, mask sets); ``255_known``:
white is kept. Undeclared, the hole is taken to be the smaller region: white is the hole when it
covers at most half of the mask, black otherwise; a warning says which was assumed and how to
declare it. A mask of one value (all hole or all known) is an error, as is a mask whose size is not
the image's, or a ``--box`` (x, y, width, height in pixels of the upright photo) outside the image.

Both the photo and the mask are turned upright by their EXIF orientation first (a phone's photo is
stored sideways with a tag), so the mask is matched to the photo as a viewer shows it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from moebius.atomic import write_json
from moebius.config import Config, ConfigError, check_config
from moebius.device import resolve_device
from moebius.diffusion.composite import composite
from moebius.diffusion.latents import vae_factor
from moebius.diffusion.sampler import inpaint_batch, model_sampling
from moebius.errors import EvalError, MaskError, TrainError
from moebius.eval.baselines import (
    get_baseline,
    load_baseline,
    provenance,
    run_baseline,
    steps_for,
    weights_kind,
    work_size,
)
from moebius.eval.inpaint import load_ours, resize_images, write_png
from moebius.report.names import OURS, build_name
from moebius.seeding import image_seed

log = logging.getLogger(__name__)

POLARITIES = ("255_hole", "255_known")
FITS = ("pad", "resize")
VARIANTS = ("pretrained", "ft_places2", "ft_celebahq", "ft_ffhq")  # the official checkpoints (train.official)
OFFICIAL = "official"
PHOTO_KEY = "photo"  # the id the sampling seed is derived from: image_seed(seed, "photo")
EXIF_ORIENTATION = 0x0112  # the EXIF tag a camera sets instead of rotating the pixels
WHITE = 128  # grey level from which a mask pixel counts as white
DIFFUSERS_MULTIPLE = 16  # FLUX / SD3: VAE factor 8 × patch 2; sizes must be multiples of it

_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what PIL raises on bad bytes


# ---------------------------------------------------------------------------------------------
# Reading the photo and its mask
# ---------------------------------------------------------------------------------------------


def _open_upright(path: Path, what: str) -> tuple[Image.Image, bool]:
    """(the decoded image turned upright by its EXIF orientation, whether it was turned)."""
    path = Path(path)
    if not path.exists():
        raise EvalError(f"{what} not found: {path}")
    if not path.is_file():
        raise EvalError(f"{what} {path} is not a file")
    try:
        with Image.open(path) as im:
            im.load()
            turned = im.getexif().get(EXIF_ORIENTATION, 1) != 1
            return ImageOps.exif_transpose(im), turned
    except _UNREADABLE as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EvalError(f"{what} {path} is not a readable image ({reason})") from exc


def read_photo(path: Path) -> tuple[np.ndarray, bool]:
    """(H, W, 3) uint8 RGB pixels of any image Pillow reads, upright; and whether EXIF turned it."""
    im, turned = _open_upright(path, "image")
    return np.asarray(im.convert("RGB")).copy(), turned


def decide_polarity(white: np.ndarray, polarity: str | None, source: str) -> tuple[np.ndarray, str, bool]:
    """(hole, polarity, detected) from a white/black mask; undeclared: the smaller region is the hole."""
    if polarity is not None and polarity not in POLARITIES:
        raise MaskError(f"unknown mask polarity {polarity!r}; choose {' or '.join(POLARITIES)}")
    if white.all() or not white.any():
        value = "white" if white.all() else "black"
        raise MaskError(f"mask {source} is all {value}: it marks no hole or nothing known (a mask needs both)")
    detected = polarity is None
    if detected:
        share = float(white.mean())
        polarity = "255_hole" if share <= 0.5 else "255_known"
        hole_colour = "white" if polarity == "255_hole" else "black"
        log.warning(f"mask polarity not given: assuming {polarity} (white covers {share:.0%} of {source}; the "
                    f"hole is taken to be the smaller region, here {hole_colour}); pass --polarity to declare it")
    hole = white if polarity == "255_hole" else ~white
    return hole, polarity, detected


def read_mask(path: Path, size: tuple[int, int], polarity: str | None) -> tuple[np.ndarray, str, bool]:
    """(hole (H, W) bool, polarity, detected) of a mask image that must be ``size`` = (width, height)."""
    im, _ = _open_upright(path, "mask")
    if im.size != size:
        raise MaskError(f"mask {path} is {im.size[0]}x{im.size[1]} but the image is {size[0]}x{size[1]} "
                        f"(width x height, upright): they must match")
    white = np.asarray(im.convert("L")) >= WHITE
    return decide_polarity(white, polarity, str(path))


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` → four integers (pixels; x, y ≥ 0, w, h ≥ 1)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise MaskError(f"--box {text!r} must be four integers x,y,w,h (pixels)") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise MaskError(f"--box {text!r}: x and y must be >= 0 and the width and height >= 1")
    return x, y, w, h


def box_hole(box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool hole of a rectangle inside an image of ``size`` = (width, height)."""
    x, y, w, h = box
    width, height = size
    if x + w > width or y + h > height:
        raise MaskError(f"--box {x},{y},{w},{h} reaches beyond the {width}x{height} image "
                        f"(x + w <= {width} and y + h <= {height} are needed)")
    if w == width and h == height:
        raise MaskError(f"--box {x},{y},{w},{h} covers the whole image: nothing is left to inpaint from")
    hole = np.zeros((height, width), bool)
    hole[y : y + h, x : x + w] = True
    return hole


# ---------------------------------------------------------------------------------------------
# Fitting the photo to the model and back
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """How a photo of ``size`` (H, W) becomes the model's ``canvas`` (H, W): scaled to ``scaled``, padded."""

    mode: str  # pad | resize
    size: tuple[int, int]
    scaled: tuple[int, int]
    canvas: tuple[int, int]

    @property
    def pad(self) -> tuple[int, int]:
        """(bottom, right) rows and columns of repeated edge pixels."""
        return self.canvas[0] - self.scaled[0], self.canvas[1] - self.scaled[1]

    def to_model(self, image: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1,3,H,W) image in [-1,1] and (1,1,H,W) hole → the same on the canvas."""
        x = resize_images(image, self.scaled)
        m = hole if self.scaled == self.size else (F.interpolate(hole, size=self.scaled, mode="area") > 0).float()
        bottom, right = self.pad
        if bottom or right:
            x = F.pad(x, (0, right, 0, bottom), mode="replicate")
            m = F.pad(m, (0, right, 0, bottom), mode="replicate")
        return x, m

    def to_photo(self, out: torch.Tensor) -> torch.Tensor:
        """(1,3,canvas) model output → (1,3,size): crop the padding, resize back."""
        out = out[..., : self.scaled[0], : self.scaled[1]]
        return resize_images(out, self.size)

    def record(self) -> dict[str, Any]:
        """Sizes as (width, height), the way image tools print them."""
        return {"mode": self.mode, "image": [self.size[1], self.size[0]], "scaled_to": [self.scaled[1], self.scaled[0]],
                "model_input": [self.canvas[1], self.canvas[0]], "pad_bottom_right": [self.pad[0], self.pad[1]],
                "resampled": self.scaled != self.size, "pad_edges": "replicate (image and mask)",
                "images": "bicubic", "mask_to_model": "area coverage > 0"}


def plan_fit(mode: str, size: tuple[int, int], side: int | None, multiple: int = 1) -> Fit:
    """The ``Fit`` of a photo of ``size`` (H, W) for a model of fixed square ``side`` or of free size
    in steps of ``multiple`` (``side`` None)."""
    if mode not in FITS:
        raise EvalError(f"unknown fit {mode!r}; choose {' or '.join(FITS)}")
    h, w = size
    if side is not None:
        canvas = (side, side)
        if mode == "resize":
            return Fit(mode, size, canvas, canvas)
        scale = side / max(h, w)
        scaled = (min(side, max(1, round(h * scale))), min(side, max(1, round(w * scale))))
        return Fit(mode, size, scaled, canvas)
    if mode == "resize":
        scaled = (max(multiple, round(h / multiple) * multiple), max(multiple, round(w / multiple) * multiple))
        return Fit(mode, size, scaled, scaled)
    return Fit(mode, size, size, (math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple))


# ---------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------

Run = Callable[[torch.Tensor, torch.Tensor, list[int], "float | None"], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """A loaded method: one batch in [-1,1] (1 = hole) → images in [-1,1], the sizes it takes, provenance."""

    run: Run
    side: int | None  # a fixed square side, or None: any size in steps of ``multiple``
    multiple: int
    guidance: float | None  # the default when none is given (None: the method's own)
    record: dict[str, Any]


def _domain(cfg: Config, target: str | None) -> str:
    """natural | portrait of a fine-tuning target, from the benchmarks that use it (natural if none)."""
    for bench in cfg.benchmarks.values():
        if target is not None and bench.finetune == target:
            return bench.domain
    return "natural"


def _official_ours(cfg: Config, model_key: str, variant: str, vae_dir: Path | None):
    """(model, vae, record) from the official files (``moebius.weights`` names them, train.official loads them)."""
    from moebius.train import load_vae
    from moebius.train.official import load_official

    if model_key not in OURS:
        raise EvalError(f"{model_key}: official weights exist for {' and '.join(OURS)} only; pass a run folder")
    kind = build_name(model_key)  # moebius -> student, pixelhacker -> teacher
    try:
        model, info = load_official(cfg, kind, variant)
        vae_kind = None
        if vae_dir is not None:
            vae, vae_source = load_vae(vae_dir), str(vae_dir)
        else:
            vae, vae_info = load_official(cfg, "vae", "pretrained")
            vae_source, vae_kind = OFFICIAL, vae_info["weights_kind"]
    except TrainError as exc:
        hint = "" if cfg.model.preset == "paper" else \
            f" (the official weights are paper-size and the config's model.preset is {cfg.model.preset!r}: " \
            f"run with --config config/full.yaml)"
        raise EvalError(f"{model_key}: {exc}{hint}") from exc
    # "generated" (moebius.weights.weight_kind) when the denoiser's or the VAE's file is a ledgered one
    labelled = "generated" if "generated" in (info["weights_kind"], vae_kind) else info["weights_kind"]
    record = {"weights": f"{OFFICIAL}:{variant}", "weights_kind": labelled, "weights_file": info.get("source_file"),
              "vae": vae_source, "target": info.get("target")}
    return model, vae, record


def _run_ours(model_key: str, run_dir: Path, vae_dir: Path | None):
    """(model, vae, record) of a run folder; the VAE is ``vae_dir``, else the run.json's ``vae_dir``."""
    from moebius.train.state import read_run

    if not run_dir.exists():
        raise EvalError(f"--weights: run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise EvalError(f"--weights takes {OFFICIAL!r} or a run folder (holding run.json); {run_dir} is a file")
    try:
        info = read_run(run_dir)
    except TrainError as exc:
        raise EvalError(f"--weights: {exc}") from exc
    trained = info.get("model")
    if (model_key == "pixelhacker") != (trained == build_name("pixelhacker")):
        raise EvalError(f"--model {model_key} does not match {run_dir}, which holds a {trained!r} run")
    if vae_dir is None:
        named = info.get("vae_dir")
        if not named:
            raise EvalError(f"{run_dir}/run.json names no VAE (vae_dir): pass --vae")
        vae_dir = Path(named)
        if not vae_dir.is_dir():
            raise EvalError(f"the VAE folder {vae_dir} that {run_dir}/run.json names is not here: pass --vae")
    elif not Path(vae_dir).is_dir():
        raise EvalError(f"--vae: VAE folder not found: {vae_dir}")
    model, vae, info = load_ours(run_dir, Path(vae_dir), model_key)
    record = {"weights": str(run_dir), "weights_kind": str(info.get("weights_kind", "trained")), "vae": str(vae_dir),
              "target": info.get("target")}
    return model, vae, record


def load_method(cfg: Config, model_key: str, weights: str | None, vae_dir: Path | None, variant: str) -> Method:
    """Load ``model_key``: ours from ``weights`` (``official`` or a run folder), a baseline from its own files."""
    if variant not in VARIANTS:
        raise EvalError(f"unknown official variant {variant!r}; choose from {', '.join(VARIANTS)}")
    spec = get_baseline(model_key)
    target = "places2" if variant == "pretrained" else variant.removeprefix("ft_")
    if spec.family != "ours":
        if weights not in (None, OFFICIAL) or vae_dir is not None:
            raise EvalError(f"{model_key} loads its own weights: --weights and --vae apply to moebius and pixelhacker")
        # the checkpoint of a benchmark of the variant's domain (baselines pick weights per benchmark)
        bench = next((b for b, bc in cfg.benchmarks.items() if bc.finetune == target), None)
        inpainter = load_baseline(cfg, model_key, benchmark=bench)  # a method that cannot run fails here
        side = work_size(cfg, model_key, bench) if bench is not None else getattr(inpainter, "model_size", None)
        multiple = DIFFUSERS_MULTIPLE if spec.family == "diffusers" else 1
        record: dict[str, Any] = {"weights_kind": weights_kind(cfg, model_key, benchmark=bench), "target": target,
                                  "weights": provenance(cfg, model_key, bench)}

        def run_other(x: torch.Tensor, m: torch.Tensor, seeds: list[int], g: float | None) -> torch.Tensor:
            return run_baseline(cfg, model_key, x, m, seeds, g, benchmark=bench).float().cpu()

        return Method(run_other, side, multiple, spec.default_guidance, record)

    if weights is None or weights == OFFICIAL:
        model, vae, record = _official_ours(cfg, model_key, variant, vae_dir)
    else:
        model, vae, record = _run_ours(model_key, Path(weights), vae_dir)
    device = resolve_device("auto")
    model, vae = model.to(device).eval(), vae.to(device).eval()
    domain = _domain(cfg, record.get("target"))
    sample_cfg, guidance = model_sampling(cfg.sample, model_key, domain)  # the benchmarks' per-model settings
    record.update(domain=domain, device=str(device), sampler={
        "start": sample_cfg.start, "strength": sample_cfg.strength, "noise_offset": sample_cfg.noise_offset,
        "paste_back": sample_cfg.paste_back, "paste_blur": sample_cfg.paste_blur,
        "precision": sample_cfg.precision, "compile": sample_cfg.compile})

    def run_ours(x: torch.Tensor, m: torch.Tensor, seeds: list[int], g: float | None) -> torch.Tensor:
        return inpaint_batch(model, vae, x.to(device), m.to(device), seeds, float(g), sample_cfg).float().cpu()

    return Method(run_ours, model.latent_size * vae_factor(vae), 1, guidance, record)


def _with_steps(cfg: Config, model_key: str, steps: int | None) -> Config:
    """The config with ``steps`` denoising steps for ``model_key`` (checked like any config)."""
    if steps is None:
        return cfg
    if get_baseline(model_key).family == "ours":
        cfg = dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, steps=steps))
    elif model_key in ("flux_fill", "sd35_inpaint"):  # the fields steps_for reads
        field = "flux_steps" if model_key == "flux_fill" else "sd35_steps"
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **{field: steps}))
    else:
        raise EvalError(f"{model_key} is not a diffusion model: --steps does not apply")
    try:
        return check_config(cfg)
    except ConfigError as exc:
        raise EvalError(f"--steps {steps}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


def sidecar_path(out: Path) -> Path:
    """Where the record of ``out`` goes: ``OUT.png.json`` beside it."""
    return Path(out).with_name(Path(out).name + ".json")


def _same_file(a: Path, b: Path | None) -> bool:
    return b is not None and Path(a).resolve() == Path(b).resolve()


def inpaint_photo(
    cfg: Config,
    image: Path,
    out: Path,
    *,
    mask: Path | None = None,
    box: str | tuple[int, int, int, int] | None = None,
    polarity: str | None = None,
    model_key: str = "moebius",
    weights: str | None = OFFICIAL,
    vae_dir: Path | None = None,
    variant: str = "ft_places2",
    fit: str = "pad",
    steps: int | None = None,
    guidance: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Inpaint ``image`` where ``mask`` (or the rectangle ``box``) says, write ``out`` (PNG, the image's
    size) and its sidecar ``out.json``; return the sidecar's record. Everything is checked before any
    model is loaded."""
    image, out = Path(image), Path(out)
    if (mask is None) == (box is None):
        raise MaskError("give either --mask MASK or --box x,y,w,h (one of them)")
    if out.suffix.lower() != ".png":
        raise EvalError(f"--out {out} must be a .png file (lossless: the known pixels stay the photo's exactly)")
    if _same_file(out, image) or _same_file(out, mask):
        raise EvalError(f"--out {out} is an input file: refusing to overwrite it")
    if out.is_dir():
        raise EvalError(f"--out {out} is a folder: name the PNG file to write")
    if fit not in FITS:
        raise EvalError(f"unknown fit {fit!r}; choose {' or '.join(FITS)}")
    if guidance is not None and not (math.isfinite(guidance) and guidance >= 0):
        raise EvalError(f"--guidance must be a finite number >= 0, got {guidance}")
    spec = get_baseline(model_key)

    pixels, turned = read_photo(image)
    height, width = pixels.shape[:2]
    if mask is not None:
        hole, polarity, detected = read_mask(Path(mask), (width, height), polarity)
        mask_record: dict[str, Any] = {"file": str(mask), "polarity": polarity, "polarity_detected": detected}
    else:
        rect = parse_box(box) if isinstance(box, str) else tuple(box)
        hole = box_hole(rect, (width, height))
        mask_record = {"box": list(rect)}
    mask_record["hole_ratio"] = round(float(hole.mean()), 6)

    cfg = _with_steps(cfg, model_key, steps)
    method = load_method(cfg, model_key, weights, vae_dir, variant)
    plan = plan_fit(fit, (height, width), method.side, method.multiple)
    g = method.guidance if guidance is None else float(guidance)
    seed = cfg.sample.seed if seed is None else int(seed)

    photo = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # (1,3,H,W)
    hole_t = torch.from_numpy(hole)[None, None].float()  # (1,1,H,W), 1 = hole
    started = time.perf_counter()
    x, m = plan.to_model(photo, hole_t)
    result = method.run(x, m, [image_seed(seed, PHOTO_KEY)], g)
    # DEVIATION (official inference returns the 512-px result of its paste-back, `none` for PixelHacker):
    # a photo keeps its own known pixels at its own size, not their resampled (or VAE-decoded) copy.
    result = composite(plan.to_photo(result.float().cpu()), photo, hole_t)
    elapsed = time.perf_counter() - started

    write_png(out, result[0])
    record = {
        "image": str(image), "upright_from_exif": turned, "mask": mask_record, "model": model_key,
        "display": spec.display, **method.record, "fit": plan.record(), "guidance": g,
        "steps": steps_for(cfg, model_key), "seed": seed, "scale": cfg.scale, "seconds": round(elapsed, 3),
        "composite": "hard, with the photo's own mask at its own size", "out": str(out),
    }
    write_json(sidecar_path(out), record)
    return record
