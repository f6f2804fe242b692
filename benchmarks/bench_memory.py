"""Per-GPU memory of the full-scale training recipe, from measured activation bytes (issue 14, Resources).

What is measured: one micro-step of each training run exactly as ``moebius.train.loop`` runs it, the
``step_fn`` being the real one of ``moebius.train.runs`` (``distill``: VAE encode, student forward,
teacher forward under ``no_grad``, the four losses with E-LatentLPIPS, the official balance with its
seven gradient-norm passes, backward; ``finetune``: VAE encode, ε-MSE, backward), captured by
replacing only the run's I/O (run folders, data stream, the run loop) with in-memory stand-ins. The
paper-size models (student 226 M, teacher 862 M, SDXL VAE, E-LatentLPIPS at official widths) run at
512 px (64x64 latents), with random weights (memory does not depend on them).

How, without a GPU and in seconds:

- The models run on PyTorch's ``meta`` device: every op computes shapes and dtypes, no data. A
  dispatch mode (``LiveBytes``) follows the storage of every tensor the step creates until it is freed
  (a finalizer on the storage), so it sees what a GPU's allocator would hold: activations saved for
  backward, transients (VAE encoder maps, the teacher's forward, the recomputation of checkpointed
  blocks, gradient-norm passes), gradients, autocast copies. Model weights, their gradients and the
  inputs are allocated before the step and counted apart. ``saved_tensors_hooks`` adds up the bytes
  saved for backward (each storage once). ``.item()`` on a meta tensor returns 1 (only the balance
  weights and logged numbers call it); the E-LatentLPIPS augmentation's padding, which depends on the
  random transform, is taken at its maximum (a meta tensor copied to the CPU reads as very large).
- On ``meta`` the models take the code paths a GPU takes (the CPU-only fast paths of
  ``lambda_layers`` and ``blocks`` test for ``device.type == "cpu"``).
- bf16: autocast has no meta backend, so ``EmulatedAutocast`` applies CUDA's autocast op lists at the
  ``torch`` function level (PyTorch's "Autocast Op Reference": matmuls and convolutions in bf16;
  norms, softmax, exp/log/pow, reductions and losses in fp32; a few ops promote), with the weight-cast
  cache of a forward. The CUDA lists keep GroupNorm / LayerNorm / softmax outputs in fp32, so a GPU
  holds more bf16-step activations than CPU autocast would (its lists run those in bf16).
- Checks (``memory_train_check.csv``; ``--no-check`` skips them): at the ``smoke`` preset the same
  measurement on meta is compared with the real step on the CPU (fp32, and bf16 with the emulator set
  to CPU autocast's lists against real CPU autocast), batch 1 and 2, without the perceptual loss
  (its augmentation padding is random on the CPU). And the paper-size recipe row is measured once
  directly at its micro-batch, against the linear extrapolation from batches 1 and 2.
- Host memory (``--no-rss`` skips it): the paper-size distillation step, batch 1, really run on this
  CPU (bf16 autocast, checkpointing) in a subprocess; peak RSS after building the models and after the
  step (``resource.getrusage``). This is what one rank holds in host RAM while it loads its models.

Per-GPU total for the recipe (``per_gpu_gib``): trainable weights + their gradients (fp32) + optimiser
state (Muon momentum per matrix, AdamW m and v for the rest: ``moebius.train.optim``'s grouping; the
real optimiser step is run on meta to measure it) + DDP's gradient buckets (``gradient_as_bucket_view``
is off: one more fp32 copy of the gradients, world size > 1) + frozen weights as the code holds them
(teacher, VAE and E-LatentLPIPS in fp32: ``load_run`` / ``load_vae`` never cast) + the step's peak
above those (measured with gradients already allocated, as in the second micro-step of gradient
accumulation). Not included: the CUDA context and library workspaces (~0.5-1 GiB per process), the
caching allocator's fragmentation, NCCL buffers; leave headroom for them.

Rows: ``distill`` (the student distilled from the teacher: rules distill, ablation_loss and Table 2's
exp9/exp10), ``distill_nokd``, ``finetune`` (Moebius), ``finetune_teacher`` (PixelHacker), each in fp32
and bf16, with and without checkpointing; ``--ablation`` adds Table 2's other architectures (bf16,
checkpointing, with KD), one row per architecture.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_memory.py             # ~10 min, 2.5 of them the CPU step
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_memory.py --ablation  # ~10 min more

(one thread, on a 2-core machine shared with other jobs; the committed CSV is one ``--ablation`` run.)
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_memory.py --no-rss --no-check --kinds finetune
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import resource
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

from moebius.atomic import atomic_open
from moebius.config import Config, load_config
from provenance import commit_label  # benchmarks/provenance.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "memory_train.csv"
FULL = REPO / "config" / "full.yaml"
GIB, MIB = 2**30, 2**20
aten = torch.ops.aten

# ---------------------------------------------------------------------------------------------
# Autocast op lists (PyTorch's Autocast Op Reference; names as the torch functions are called)
# ---------------------------------------------------------------------------------------------

_LOWER_COMMON = {
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "conv_tbc",
    "convolution", "_convolution", "prelu", "addmm", "addbmm", "baddbmm", "bmm", "mm", "matmul", "linear",
    "scaled_dot_product_attention", "__matmul__", "__rmatmul__",
    # einsum is one call at this level; its inner bmm is what autocast casts, to the same bf16 operands
    "einsum",
}
_FP32_CUDA = {
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt",
    "sinh", "tan", "pow", "__pow__", "__rpow__", "__rdiv__", "__rtruediv__", "softplus", "layer_norm",
    "native_layer_norm", "rms_norm", "group_norm", "frobenius_norm", "nuclear_norm", "cosine_similarity",
    "poisson_nll_loss", "cosine_embedding_loss", "nll_loss", "nll_loss2d", "hinge_embedding_loss", "kl_div",
    "l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss", "margin_ranking_loss", "multilabel_margin_loss",
    "soft_margin_loss", "triplet_margin_loss", "multi_margin_loss", "binary_cross_entropy_with_logits",
    "dist", "pdist", "cdist", "renorm", "logsumexp", "normalize", "cross_entropy",
}
# CUDA runs these in fp32 when given a lower-precision input and no dtype (``fp32_set_opt_dtype``)
_OPT_DTYPE_CUDA = {"prod", "softmax", "log_softmax", "softmin", "cumprod", "cumsum", "sum", "norm",
                   "linalg_vector_norm", "linalg_matrix_norm"}
_PROMOTE_CUDA = {"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "grid_sampler", "index_put",
                 "tensordot", "scatter_add", "cat", "stack", "index_copy"}
_FP32_CPU = {
    "avg_pool3d", "binary_cross_entropy", "grid_sampler", "grid_sample", "polar", "prod", "quantile",
    "nanquantile", "stft", "cdist", "trace", "max_pool3d", "adaptive_avg_pool3d", "mse_loss",
    "cosine_embedding_loss", "nll_loss", "nll_loss2d", "hinge_embedding_loss", "poisson_nll_loss",
    "smooth_l1_loss", "cross_entropy", "l1_loss", "huber_loss", "margin_ranking_loss", "soft_margin_loss",
    "triplet_margin_loss", "multi_margin_loss", "kl_div", "multilabel_margin_loss",
    "binary_cross_entropy_with_logits",
}
POLICIES = {
    "cuda": (_LOWER_COMMON | {"addmv", "addr", "chain_matmul", "multi_dot", "linalg_multi_dot"}, _FP32_CUDA,
             _OPT_DTYPE_CUDA, _PROMOTE_CUDA),
    "cpu": (_LOWER_COMMON, _FP32_CPU, set(), {"cat", "stack", "index_copy"}),
}


class EmulatedAutocast(TorchFunctionMode):
    """torch.autocast's casting rules (``policy``: "cuda" or "cpu" op lists) for devices without autocast.

    Active while ``scope(True)`` is the innermost scope; ``torch.autocast("meta", enabled=...)`` calls
    in the measured code map to ``scope``. Casts happen before the op, where autograd records them, as
    autocast's do. Within a cached scope, casts of leaf fp32 weights that require grad are reused (the
    autocast weight cache, cleared when the outermost scope exits).
    """

    def __init__(self, policy: str, dtype: torch.dtype = torch.bfloat16, enabled: bool = False,
                 cache: bool = True) -> None:
        super().__init__()
        self.policy = policy
        self.lower, self.fp32, self.opt_dtype, self.promote = POLICIES[policy]
        self.dtype = dtype
        self.enabled: list[bool] = [enabled]
        self.cache_on = cache
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def recompute_context(self) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        """``torch.utils.checkpoint``'s ``context_fn``: the recomputation in backward runs under the
        forward's autocast state, as checkpoint restores torch's own autocast state. Backward runs on
        the autograd engine's thread, where this mode is not on the stack, so a mode of its own is
        entered there (one cast per use, no weight cache: the recomputed block's scope is short)."""
        return contextlib.nullcontext(), EmulatedAutocast(self.policy, self.dtype, self.enabled[-1], cache=False)

    @contextlib.contextmanager
    def scope(self, enabled: bool = True, cache: bool = True) -> Iterator[None]:
        self.enabled.append(bool(enabled))
        before, self.cache_on = self.cache_on, cache
        try:
            yield
        finally:
            self.enabled.pop()
            self.cache_on = before
            if len(self.enabled) == 1:
                self.cache.clear()

    def _to(self, x: Any, dtype: torch.dtype) -> Any:
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()) or x.dtype in (dtype, torch.float64):
            return x
        if (self.cache_on and dtype == self.dtype and x.dtype == torch.float32 and x.is_leaf and x.requires_grad
                and not x._is_view()):
            hit = self.cache.get(id(x))
            if hit is None or hit[0] is not x:
                hit = (x, x.to(dtype))
                self.cache[id(x)] = hit
            return hit[1]
        return x.to(dtype)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # torch's signature
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.enabled[-1] and name:
            if name in self.lower:
                args, kwargs = tree_map(lambda x: self._to(x, self.dtype), (args, kwargs))
            elif name in self.fp32:
                args, kwargs = tree_map(lambda x: self._to(x, torch.float32), (args, kwargs))
            elif name in self.opt_dtype and kwargs.get("dtype") is None:
                first = next((x for x in tree_leaves(args) if isinstance(x, torch.Tensor)), None)
                if first is not None and first.dtype in (torch.bfloat16, torch.float16):
                    args = tree_map(lambda x: self._to(x, torch.float32), args)
            elif name in self.promote:
                floats = [x.dtype for x in tree_leaves((args, kwargs))
                          if isinstance(x, torch.Tensor) and x.is_floating_point()]
                if floats:
                    widest = max(floats, key=lambda d: torch.finfo(d).bits)
                    args, kwargs = tree_map(lambda x: self._to(x, widest), (args, kwargs))
        return func(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Bytes: live storages (and their peak), bytes saved for backward
# ---------------------------------------------------------------------------------------------


def storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages created on ``device`` while active and not yet freed; ``peak`` their maximum.

    Storages in ``known`` (weights, gradients, inputs) are not counted. On meta, ``.item()`` returns 1
    and a copy to the CPU a tensor of ``CPU_COPY_VALUE`` (see the module docstring).
    """

    CPU_COPY_VALUE = 1e6

    def __init__(self, device: str, known: set[int]) -> None:
        super().__init__()
        self.device, self.known = device, known
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)

    def _track(self, t: torch.Tensor) -> None:
        if t.device.type != self.device:
            return
        s = t.untyped_storage()
        key = s._cdata
        if key in self.live or key in self.known:
            return
        n = s.nbytes()
        self.live[key] = n
        self.now += n
        self.peak = max(self.peak, self.now)
        weakref.finalize(s, self._free, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # torch's signature
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default and args[0].is_meta:
            return True if args[0].dtype == torch.bool else 1
        if (func is aten._to_copy.default and args[0].is_meta and kwargs.get("device") is not None
                and torch.device(kwargs["device"]).type == "cpu"):
            return torch.full(args[0].shape, self.CPU_COPY_VALUE, dtype=kwargs.get("dtype") or args[0].dtype)
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


@contextlib.contextmanager
def saved_bytes(known: set[int], acc: dict[str, int]) -> Iterator[None]:
    """Adds to ``acc["saved"]`` the bytes of every storage saved for backward (once each, weights apart)."""
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in seen and key not in known:
            seen.add(key)
            acc["saved"] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


# ---------------------------------------------------------------------------------------------
# The runs' real step functions
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Kind:
    """One training run of the recipe: which ``runs`` call, on which model, for which Snakemake rule."""

    name: str
    run: str  # distill | distill_nokd | finetune
    model: str  # the trained model: student, teacher or a Table 2 variant (exp<N>)
    rule: str  # the Snakemake rule(s) that run it


KINDS = {k.name: k for k in (
    Kind("distill", "distill", "student", "distill, ablation_loss, ablation_arch exp9/exp10"),
    Kind("distill_nokd", "distill_nokd", "student", "distill_nokd"),
    Kind("finetune", "finetune", "student", "finetune moebius_*"),
    Kind("finetune_teacher", "finetune", "teacher", "finetune pixelhacker_*"),
)}
# Table 2's other architectures, each with KD (the teacher loaded: the larger of each KD-on/off pair);
# exp9/exp10 are the student. Opt-in (--ablation): the GLA variants take ~80 s each on meta.
ABLATION = {exp: Kind(f"ablation_arch_{exp}", "distill", exp, f"ablation_arch {rows}")
            for exp, rows in (("exp11", "exp1/exp11"), ("exp12", "exp2/exp12"), ("exp13", "exp3/exp13"),
                              ("exp14", "exp4/exp14"), ("exp15", "exp5/exp15"), ("exp7", "exp6/exp7"),
                              ("exp8", "exp8"))}


def recipe_config(path: Path, checkpointing: bool) -> Config:
    """The full-scale config with trained (not official) students and teachers, so every run trains."""
    ckpt = {"train": {"gradient_checkpointing": checkpointing}}
    return load_config(path, overrides={
        "distill": ckpt, "finetune": ckpt,
        "model": {"student_source": "train", "teacher_source": "train"},
        "teacher_train": {"steps": 1},
    })


def batch_plan(cfg: Config, kind: Kind) -> tuple[int, int, int]:
    """(micro-batch per GPU, GPUs, gradient-accumulation steps) of the run."""
    if kind.run.startswith("distill"):
        t = cfg.distill.train
        return t.batch_size, t.gpus, t.global_batch // (t.batch_size * t.gpus)
    tgt = cfg.finetune.targets["places2"]  # celebahq: 2 GPUs, ffhq: 4; the same micro-batch everywhere
    b = cfg.finetune.train.batch_size
    return b, tgt.gpus, tgt.global_batch // (b * tgt.gpus)


@contextlib.contextmanager
def gpu_code_paths() -> Iterator[None]:
    """On a real CPU, the branches a GPU takes (meta takes them by itself): the CPU-only fast paths of
    ``lambda_layers`` and ``blocks`` replaced by their other-device branch."""
    from moebius.models import blocks, lambda_layers

    def positional(self, q, v):  # InteractiveLambda.forward's non-CPU branch
        lam_p = torch.einsum("nmk,bvm->bnkv", self.rel_pos_emb.squeeze(-1), v)
        return torch.einsum("bhkn,bnkv->bhvn", q, lam_p)

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(
            lambda_layers, "_query_times_lambda", lambda q, lam: torch.einsum("bhkn,bkvn->bhvn", q, lam)))
        stack.enter_context(mock.patch.object(lambda_layers.InteractiveLambda, "_positional_cpu", positional))
        stack.enter_context(mock.patch.object(blocks, "conv3x3", lambda conv, x: conv(x)))
        stack.enter_context(mock.patch.object(
            blocks.Upsample, "_forward_taps",
            lambda self, x: self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))))
        yield


def capture(cfg: Config, kind: Kind, losses: tuple[str, ...] | None = None):  # RunSpec
    """The RunSpec that ``moebius.train.runs`` builds for ``kind`` (models built where the caller's
    device context says), with its folders, data and run loop replaced."""
    from moebius.models import build_model, build_vae
    from moebius.train import runs
    from moebius.train.elatentlpips import OFFICIAL_WIDTHS, STANDIN_WIDTHS, ELatentLPIPS

    preset = cfg.model.preset
    got: dict[str, Any] = {}

    def run_training(cfg, spec, out_dir, control=None):
        got["spec"] = spec
        return out_dir

    def load_run(run_dir, device="cpu"):  # the folder's name is the model's
        name = Path(run_dir).name
        return build_model(name, preset).eval(), {"model": name, "preset": preset}

    vae = build_vae(preset)
    widths = OFFICIAL_WIDTHS if preset == "paper" else STANDIN_WIDTHS
    with mock.patch.multiple(
        runs,
        load_vae=lambda d, device="cpu": vae.eval().requires_grad_(False),
        load_run=load_run,
        build_perceptual_net=lambda kind, cfg: (ELatentLPIPS(4, widths), "official"),
        _denoiser_stream=lambda *a, **k: None,
        data_versions=lambda *a, **k: {},
        run_training=run_training,
    ):
        teacher, vae_dir, out = Path("teacher"), Path("vae"), Path("out")
        if kind.run == "distill":
            runs.distill(cfg, kind.model, teacher, vae_dir, out, losses=losses)
        elif kind.run == "distill_nokd":
            runs.distill(cfg, kind.model, teacher, vae_dir, out, kd=False)
        else:
            runs.finetune(cfg, kind.model, Path(kind.model), vae_dir, "places2", out)
    return got["spec"]


def nbytes(tensors) -> int:
    return sum(t.untyped_storage().nbytes() for t in {storage_key(t): t for t in tensors}.values())


@dataclasses.dataclass
class Step:
    """A captured step, ready to be run at any batch size."""

    spec: Any
    device: str
    image_size: int
    known: set[int]
    trainable_bytes: int
    frozen_bytes: int


def prepare(cfg: Config, kind: Kind, device: str, losses: tuple[str, ...] | None = None) -> Step:
    """Build the run's models on ``device`` as ``loop._train`` places them, gradients allocated."""
    from moebius.models.presets import get_preset

    with torch.device(device):
        spec = capture(cfg, kind, losses)
    model = spec.model.train()
    for m in spec.frozen:
        m.eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)  # the second accumulation micro-step's state: gradients exist
    known = {storage_key(t) for m in (model, *spec.frozen) for t in (*m.parameters(), *m.buffers())}
    known |= {storage_key(p.grad) for p in params}
    frozen = [t for m in spec.frozen for t in (*m.parameters(), *m.buffers())]
    return Step(spec, device, get_preset(cfg.model.preset).image_size, known,
                nbytes(params), nbytes(frozen))


def run_step(step: Step, batch: int, precision: str, policy: str | None = "cuda") -> dict[str, int]:
    """One micro-step (autocast region, then backward) at ``batch``; bytes saved for backward and the
    peak of live bytes above weights and gradients. ``policy``: the emulated autocast lists (meta), or
    None for torch's own autocast (a real CPU)."""
    from moebius.models import unet
    from moebius.seeding import torch_generator
    from moebius.train.loop import StepContext

    dev = torch.device(step.device)
    size = step.image_size
    images = (torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dev)
    masks = torch.zeros(batch, 1, size, size)
    masks[:, :, size // 5: size // 2, size // 4: 3 * size // 4] = 1.0
    masks = masks.to(dev)
    known = step.known | {storage_key(images), storage_key(masks)}
    ctx = StepContext(0, 0, 0, dev, torch_generator("train", 0, "bench_memory", batch))
    acc = {"saved": 0}
    live = LiveBytes(dev.type, known)
    amp = precision == "bf16"
    with contextlib.ExitStack() as stack:
        region: contextlib.AbstractContextManager = contextlib.nullcontext()
        if policy is not None:  # no torch autocast on this device: emulated (fp32: the scopes do nothing)
            emu = EmulatedAutocast(policy)
            real_autocast = torch.autocast

            def autocast(device_type, dtype=None, enabled=True, cache_enabled=None):
                if device_type == step.device:
                    return emu.scope(enabled and amp)
                return real_autocast(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

            stack.enter_context(mock.patch.object(torch, "autocast", autocast))
            stack.enter_context(mock.patch.object(
                unet, "checkpoint", functools.partial(torch.utils.checkpoint.checkpoint, context_fn=emu.recompute_context)))
            stack.enter_context(emu)
            region = emu.scope(amp)
        elif amp:
            region = torch.autocast(dev.type, dtype=torch.bfloat16)
        with live:
            with saved_bytes(known, acc), region:
                out = step.spec.step_fn(step.spec.model, images, masks, ctx)
            loss = out["loss_total"]
            del out
            loss.backward()
            del loss
    return {"saved": acc["saved"], "peak": live.peak, "after": live.now}


def optimizer_bytes(step: Step) -> tuple[int, int]:
    """(state bytes, transient peak above state) of the run's real optimiser step (Muon + AdamW)."""
    from moebius.train.optim import build_optimizer

    opt = build_optimizer(step.spec.model.named_parameters(), step.spec.train)
    live = LiveBytes(step.device, step.known)
    with live:
        opt.step()
    state = [t for o in opt.optimizers for s in o.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    state_bytes = nbytes(state)
    return state_bytes, max(live.peak - state_bytes, 0)


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------


def measure_kind(kind: Kind, precisions: list[str], checkpointing: list[bool], direct: bool) -> list[dict[str, Any]]:
    """One row per (precision, checkpointing): batches 1 and 2 measured, the micro-batch extrapolated
    (``direct``: the bf16 + checkpointing row also measured at the micro-batch itself)."""
    rows = []
    opt: tuple[int, int] | None = None
    for ckpt in checkpointing:
        cfg = recipe_config(FULL, ckpt)
        batch, gpus, accum = batch_plan(cfg, kind)
        step = prepare(cfg, kind, "meta")
        if opt is None:
            opt = optimizer_bytes(step)
        for precision in precisions:
            t0 = time.perf_counter()
            b1, b2 = run_step(step, 1, precision), run_step(step, 2, precision)
            per_saved, per_peak = b2["saved"] - b1["saved"], b2["peak"] - b1["peak"]
            const_peak = b1["peak"] - per_peak
            at_batch = const_peak + per_peak * batch
            measured = run_step(step, batch, precision)["peak"] if direct and precision == "bf16" and ckpt else None
            state, opt_extra = opt
            grads = step.trainable_bytes
            ddp = grads if gpus > 1 else 0
            fixed = step.trainable_bytes + grads + state + ddp + step.frozen_bytes
            total = fixed + max(at_batch, opt_extra)
            rows.append({
                "kind": kind.name, "model": kind.model, "rule": kind.rule, "precision": precision,
                "gradient_checkpointing": ckpt, "image_size": step.image_size, "micro_batch": batch, "gpus": gpus,
                "accumulation": accum,
                "saved_b1_mib": round(b1["saved"] / MIB, 1), "saved_b2_mib": round(b2["saved"] / MIB, 1),
                "saved_per_sample_mib": round(per_saved / MIB, 1),
                "peak_b1_mib": round(b1["peak"] / MIB, 1), "peak_b2_mib": round(b2["peak"] / MIB, 1),
                "peak_per_sample_mib": round(per_peak / MIB, 1), "peak_const_mib": round(const_peak / MIB, 1),
                "step_peak_at_batch_gib": round(at_batch / GIB, 2),
                "step_peak_measured_gib": round(measured / GIB, 2) if measured is not None else None,
                "trainable_params_m": round(sum(p.numel() for p in step.spec.model.parameters()) / 1e6, 1),
                "weights_gib": round(step.trainable_bytes / GIB, 2), "grads_gib": round(grads / GIB, 2),
                "optimizer_state_gib": round(state / GIB, 2), "optimizer_step_extra_gib": round(opt_extra / GIB, 2),
                "ddp_buckets_gib": round(ddp / GIB, 2), "frozen_weights_gib": round(step.frozen_bytes / GIB, 2),
                "per_gpu_gib": round(total / GIB, 1),
                "seconds": round(time.perf_counter() - t0, 1),
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def check_rows() -> list[dict[str, Any]]:
    """Meta + emulated autocast against the real step on this CPU, at the smoke preset."""
    smoke = REPO / "config" / "smoke.yaml"
    rows = []
    for kind, losses in ((KINDS["distill"], ("c_kd", "f_kd", "task")), (KINDS["finetune"], None)):
        cfg = load_config(smoke, overrides={"distill": {"train": {"gradient_checkpointing": True}},
                                            "finetune": {"train": {"gradient_checkpointing": True}}})
        torch.manual_seed(0)
        meta = prepare(cfg, kind, "meta", losses)
        torch.manual_seed(0)
        cpu = prepare(cfg, kind, "cpu", losses)
        for precision in ("fp32", "bf16"):
            for batch in (1, 2):
                m = run_step(meta, batch, precision, policy="cpu")
                with gpu_code_paths():
                    c = run_step(cpu, batch, precision, policy=None)
                rows.append({"kind": kind.name, "preset": "smoke", "precision": precision, "batch": batch,
                             **{f"meta_{k}": v for k, v in m.items()}, **{f"cpu_{k}": v for k, v in c.items()},
                             "saved_rel_diff": round(abs(m["saved"] - c["saved"]) / max(c["saved"], 1), 4),
                             "peak_rel_diff": round(abs(m["peak"] - c["peak"]) / max(c["peak"], 1), 4)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def rss_child() -> None:
    """(In a subprocess) build the paper-size distillation on the CPU, run one real step at batch 1."""
    torch.set_num_threads(1)
    cfg = recipe_config(FULL, True)
    step = prepare(cfg, KINDS["distill"], "cpu")
    after_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    run_step(step, 1, "bf16", policy=None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"host_rss_after_build_gib": round(after_build / GIB, 2),
                      "host_rss_peak_step_b1_gib": round(peak / GIB, 2),
                      "cpu_step_b1_seconds": round(time.perf_counter() - t0, 1)}))


def rss_measure() -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    out = subprocess.run([sys.executable, __file__, "--rss-child"], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(rows).to_csv(fh, index=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--ablation", action="store_true",
                    help="also Table 2's other architectures (bf16, checkpointing; ~10 min more on one thread)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-check", dest="check", action="store_false", help="skip the smoke-preset CPU check")
    ap.add_argument("--no-rss", dest="rss", action="store_false", help="skip the real CPU step (host RSS)")
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.rss_child:
        rss_child()
        return 0
    t0 = time.perf_counter()
    stamp = {"date": dt.date.today().isoformat(), "commit": commit_label("benchmarks/bench_memory.py", "config"), "torch_version": torch.__version__}
    rows = []
    for name in args.kinds:
        rows += measure_kind(KINDS[name], args.precisions, [True, False], direct=name == "distill")
    if args.ablation:
        for kind in ABLATION.values():
            rows += measure_kind(kind, ["bf16"], [True], direct=False)
    if args.rss:
        host = rss_measure()
        print(json.dumps(host), flush=True)
        for row in rows:
            if row["kind"] == "distill" and row["precision"] == "bf16" and row["gradient_checkpointing"]:
                row.update(host)
    if args.check:
        write_csv([{**r, **stamp} for r in check_rows()], args.out.with_name(args.out.stem + "_check.csv"))
    write_csv([{**r, "method": "meta device, CUDA autocast lists emulated", **stamp} for r in rows], args.out)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
