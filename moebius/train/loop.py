"""One training loop for every run: VAE, teacher, distillation, fine-tuning (paper Sec. 4.1).

What a run plugs in is a ``RunSpec``: the module to train, its TrainConfig, the sample stream and a
``step_fn`` that turns one micro-batch into a dict of losses (``loss_total`` is back-propagated). The
loop provides, the same way for all of them:
- DDP through ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK); world size 1 is the same code path
  without a process group;
- gradient accumulation: global_batch = batch_size x world_size x accum (an exact multiple or an error);
- bf16 autocast where asked (``precision: bf16``) or where the device supports it (``auto``);
- gradient clipping, the step lr schedule (optim.py), a tqdm bar, one metrics row per step;
- atomic checkpoints every ``checkpoint_every`` steps and exact resumption: every random draw of a
  step is seeded from (seed, run kind, step, micro-step, rank) and the data order from (seed, epoch),
  so a resumed run repeats the uninterrupted one bit for bit (same device, same thread count).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from moebius.atomic import write_json, write_text
from moebius.config import Config, TrainConfig, config_hash, to_dict
from moebius.errors import TrainError
from moebius.seeding import derive, torch_generator
from moebius.train.batches import (
    StreamLayout,
    TrainStream,
    batch_loader,
)
from moebius.train.optim import build_optimizer, lr_at
from moebius.train.state import (
    METRICS_CSV,
    RUN_JSON,
    WEIGHTS_NAME,
    latest_state,
    load_state,
    metrics_csv_text,
    save_state,
    save_weights,
)

# ---------------------------------------------------------------------------------------------
# Devices and processes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun job (world size 1 without torchrun)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistInfo:
    """Read torchrun's environment; initialise the process group once when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for ``bf16``; for ``auto`` bf16 only on a GPU that supports it; None (fp32) otherwise."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def mean_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """All-reduce mean (identity without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class StepContext:
    """Where a micro-step is, and its private random generator (seeded, never shared)."""

    step: int
    micro: int
    rank: int
    device: torch.device
    generator: torch.Generator


StepFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, StepContext], dict[str, torch.Tensor]]


@dataclass
class RunSpec:
    """Everything that distinguishes one kind of run from another."""

    kind: str  # vae | teacher | distill | finetune (part of every per-step seed)
    model: nn.Module  # the module being trained (unwrapped)
    train: TrainConfig
    steps: int
    global_batch: int
    stream: TrainStream
    step_fn: StepFn
    info: dict[str, Any]  # merged into run.json
    finalize: Callable[[nn.Module, Path], None] | None = None  # extra files (the VAE's config.json)
    frozen: list[nn.Module] = field(default_factory=list)  # moved to the device, kept in eval mode
    export: nn.Module | None = None  # whose weights go to model.safetensors (default: ``model``)


def accumulation(train: TrainConfig, global_batch: int, world_size: int) -> int:
    """global_batch / (batch_size x world_size), which must be a positive integer."""
    per_step = train.batch_size * world_size
    if global_batch < per_step or global_batch % per_step:
        raise TrainError(
            f"global_batch {global_batch} is not a multiple of batch_size {train.batch_size} x world size {world_size}"
        )
    return global_batch // per_step


def run_training(cfg: Config, spec: RunSpec, out_dir: Path, resume: bool = False, stop_after: int | None = None) -> Path:
    """Train ``spec.model`` for ``spec.steps`` steps into ``out_dir``; return ``out_dir``.

    ``stop_after`` ends the process's work after that many steps without writing the final outputs
    (a pre-emption drill: the checkpoint is what survives).
    """
    out_dir = Path(out_dir)
    info = setup_distributed()
    train = spec.train
    if spec.steps < 1:
        raise TrainError(f"{spec.kind}: steps must be >= 1, got {spec.steps}")
    accum = accumulation(train, spec.global_batch, info.world_size)
    fingerprint = config_hash({"cfg": to_dict(cfg), "info": spec.info, "steps": spec.steps, "world": info.world_size})

    model = spec.model.to(info.device)
    for m in spec.frozen:
        m.to(info.device).eval().requires_grad_(False)
    model.train()
    optimizer = build_optimizer(model.named_parameters(), train)

    start, rows = 0, []
    state_dir = latest_state(out_dir) if resume else None
    if state_dir is not None:
        start, opt_state, rows, meta = load_state(state_dir, model)
        if meta.get("fingerprint") != fingerprint:
            raise TrainError(f"cannot resume {out_dir}: its checkpoint was written by a different config or run")
        optimizer.load_state_dict(opt_state)
        rows = [r for r in rows if r["step"] <= start]
    elif resume and (out_dir / WEIGHTS_NAME).is_file() and (out_dir / RUN_JSON).is_file():
        return out_dir  # finished earlier and nothing to continue from: leave it as it is
    if start >= spec.steps:
        if (out_dir / RUN_JSON).is_file() and (out_dir / WEIGHTS_NAME).is_file():
            return out_dir  # already finished: resuming is a no-op
        return _finish(cfg, spec, out_dir, model, rows, info, accum, wall=None)

    ddp_model: nn.Module = model
    if info.world_size > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None
        )
    layout = StreamLayout(train.batch_size, accum, info.world_size, info.rank)
    loader = iter(batch_loader(spec.stream, layout, start, spec.steps, train.num_workers))
    amp = autocast_dtype(train.precision, info.device)
    params = [p for p in model.parameters() if p.requires_grad]
    meta = {"fingerprint": fingerprint, "kind": spec.kind}
    bar = tqdm(total=spec.steps, initial=start, desc=spec.kind, disable=not info.is_main, mininterval=1.0)
    t_begin, timed_steps = None, 0

    for step in range(start, spec.steps):
        if step == start + 1:
            t_begin = time.perf_counter()  # the first step pays one-off costs: time the rest
        lr = lr_at(train, step, spec.steps)
        optimizer.set_lr(lr)
        optimizer.zero_grad()
        sums: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            images, masks = next(loader)
            images, masks = images.to(info.device, non_blocking=True), masks.to(info.device, non_blocking=True)
            seed = derive("train", cfg.seed, spec.kind, step, micro, info.rank)
            torch.manual_seed(seed)  # dropout and any other global draw: per step, not running
            ctx = StepContext(step, micro, info.rank, info.device, torch_generator("train", cfg.seed, spec.kind, step, micro, info.rank))
            sync = micro == accum - 1 or info.world_size == 1
            with _maybe_no_sync(ddp_model, sync):  # forward and backward both inside, as DDP requires
                with _autocast(info.device, amp):
                    out = spec.step_fn(ddp_model, images, masks, ctx)
                loss = out["loss_total"]
                if not torch.isfinite(loss.detach()):
                    raise TrainError(f"{spec.kind}: non-finite loss at step {step + 1} ({float(loss)})")
                (loss / accum).backward()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + torch.as_tensor(v, dtype=torch.float32).detach()
        grad_norm = (
            nn.utils.clip_grad_norm_(params, train.grad_clip) if train.grad_clip > 0 else _grad_norm(params)
        )
        optimizer.step()

        keys = sorted(sums)
        vals = mean_across_ranks(torch.stack([sums[k].to(info.device) / accum for k in keys]))
        row = {"step": step + 1, **{k: float(v) for k, v in zip(keys, vals)}, "lr": lr, "grad_norm": float(grad_norm)}
        rows.append(row)
        bar.update(1)
        if info.is_main and (step + 1) % max(train.log_every, 1) == 0:
            bar.set_postfix(loss=f"{row['loss_total']:.4f}", lr=f"{lr:.2e}")
        if step > start:
            timed_steps += 1
        done = step + 1
        if done % max(train.checkpoint_every, 1) == 0 or done == spec.steps:
            if info.is_main:
                save_state(out_dir, done, model, optimizer.state_dict(), rows, meta)
            _barrier()
        if stop_after is not None and done >= stop_after and done < spec.steps:
            bar.close()
            return out_dir
    bar.close()
    wall = (time.perf_counter() - t_begin) / timed_steps if t_begin is not None and timed_steps else None
    return _finish(cfg, spec, out_dir, model, rows, info, accum, wall)


def _finish(
    cfg: Config, spec: RunSpec, out_dir: Path, model: nn.Module, rows: list, info: DistInfo, accum: int, wall: float | None
) -> Path:
    """Write model.safetensors, train_metrics.csv, run.json (and the run's extra files) on rank 0."""
    if info.is_main:
        if spec.finalize is not None:
            spec.finalize(model, out_dir)
        save_weights(spec.export if spec.export is not None else model, out_dir / WEIGHTS_NAME)
        write_text(out_dir / METRICS_CSV, metrics_csv_text(rows))
        run = {
            **spec.info,
            "steps": spec.steps,
            "global_batch": spec.global_batch,
            "batch_size": spec.train.batch_size,
            "world_size": info.world_size,
            "accumulation": accum,
            "precision": str(autocast_dtype(spec.train.precision, info.device) or torch.float32),
            "device": str(info.device),
            "seed": cfg.seed,
            "scale": cfg.scale,
            "config_hash": config_hash(cfg),
            "config": to_dict(cfg),
            "first_loss_total": rows[0]["loss_total"] if rows else None,
            "final_loss_total": rows[-1]["loss_total"] if rows else None,
            "seconds_per_step": wall,
            "torch_threads": torch.get_num_threads(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(out_dir / RUN_JSON, run)  # last: its presence marks a finished run
    _barrier()
    return out_dir


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def _maybe_no_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DDP's no_sync() on accumulation micro-steps; a null context otherwise."""
    if not sync and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast in ``dtype``, or a null context for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
