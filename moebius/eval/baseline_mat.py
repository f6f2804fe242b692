"""The runner of the ``mat`` baseline (``moebius.eval.baselines``): MAT (Li et al., CVPR 2022) through
``moebius.eval.mat.load_mat_inpainter``, as ``load(cfg, spec, checkpoint, size) -> Loaded``.

Checkpoints (the entry's ``checkpoints``, keys of ``moebius.weights``): the model MAT trained on each
benchmark's fine-tuning target, ``moebius.eval.mat.WEIGHT_KEYS`` (Places_512 for Places2 and LVIS,
CelebA-HQ_512 for CelebA-HQ and DeepFakeFace, FFHQ_512 for FFHQ), read as safetensors converted with
``moebius weights convert-mat`` (the loader refuses pickles). Smoke scale, and full scale with
``weights.allow_standin`` when a file is missing, run the stand-in of ``moebius.eval.mat``: the official
module tree with reduced widths, from a fixed seed per target.

Size: MAT is a fixed-size network, 512 px for the official checkpoints. At full scale the harness runs
every benchmark at 512 (``baselines.work_size``) and resizes back. At smoke scale the size shrinks with
the benchmark (32-64 px), below MAT's smallest resolution (128: the first stage brings the image to a
64x64 token grid), so the stand-in (a 128-px network, ``moebius.eval.mat.STANDIN``) resizes to its
size and back itself, the way the harness does (bicubic, masks nearest); the provenance records it as
``standin_resized``.
"""

from __future__ import annotations

from typing import Any

import torch

from moebius.config import Config
from moebius.errors import EvalError, WeightError
from moebius.eval.baselines import BaselineSpec, Checkpoint, Inpainter, Loaded


def target_of(checkpoint: Checkpoint) -> str:
    """The fine-tuning target whose MAT model ``checkpoint`` is (``moebius.eval.mat.WEIGHT_KEYS``)."""
    from moebius.eval.mat import WEIGHT_KEYS

    for target, key in WEIGHT_KEYS.items():
        if key == checkpoint.key:
            return target
    raise EvalError(f"mat: {checkpoint.key!r} is not a MAT checkpoint; known: {', '.join(WEIGHT_KEYS.values())}")


def _resized(inpainter: Inpainter, model_size: int) -> Inpainter:
    """``inpainter`` (fixed at ``model_size``) on images of another size: there and back, as the harness."""
    from moebius.eval.inpaint import resize_images, resize_masks

    def run(images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        size = images.shape[-1]
        out = inpainter(resize_images(images.float(), model_size), resize_masks(masks.float(), model_size), seeds,
                        guidance)  # (B,3,R,R)
        return resize_images(out.float(), size)  # (B,3,S,S); the harness composites with the known pixels

    return run


def load(cfg: Config, spec: BaselineSpec, checkpoint: Checkpoint, size: int | None) -> Loaded:
    """MAT for the benchmarks ``checkpoint`` serves, running on ``size``-px images (None: its own 512)."""
    from moebius.eval.mat import load_mat_inpainter

    target = target_of(checkpoint)
    try:
        mat = load_mat_inpainter(cfg.scale, cfg.weights.allow_standin, cfg.weights.dir, target)
    except WeightError as exc:  # a missing file, a pickle, another network: one line naming the method
        raise EvalError(f"{spec.name}: {exc}") from exc
    info: dict[str, Any] = {"kind": mat.weights_kind, **mat.weights_record}
    run: Inpainter = mat
    if size is not None and size != mat.model_size:
        if mat.weights_kind != "standin":  # only a smoke-scale benchmark is smaller than the official 512
            raise EvalError(f"{spec.name}: the {checkpoint.key} network runs at {mat.model_size} px only, "
                            f"asked to run at {size} px")
        run = _resized(mat, mat.model_size)
        info["standin_resized"] = {"from": size, "to": mat.model_size, "images": "bicubic", "masks": "nearest"}
    return Loaded(run, info)
