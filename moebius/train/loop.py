"""One training loop for every run: VAE, teacher, distillation, fine-tuning (paper Sec. 4.1).

What a run plugs in is a ``RunSpec``: the module to train, its TrainConfig, the sample stream and a
``step_fn`` that turns one micro-batch into a dict of losses (``loss_total`` is back-propagated). The
loop provides, the same way for all of them:
- DDP through ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK); world size 1 is the same code path
  without a process group;
- gradient accumulation: global_batch = batch_size x world_size x accum (an exact multiple or an error);
- bf16 autocast where asked (``precision: bf16``) or where the device supports it (``auto``);
- gradient clipping, the step lr schedule (optim.py), a progress bar, one metrics row per step (also as
  DVCLive curves in ``dvclive/``, for ``dvc plots show``);
- atomic checkpoints every ``checkpoint_every`` steps and exact resumption: every random draw of a
  step is seeded from (seed, run kind, step, micro-step, rank) and the data order from (seed, epoch),
  so a resumed run repeats the uninterrupted one bit for bit (same device, same thread count);
- one writer per run folder (``state.run_lock``), stale temporary files of a killed write removed, and
  a resume identity (below) that refuses to continue a run whose results-changing settings differ.
  ``RunControl(fresh=True)`` (``--fresh``) moves an earlier run aside to ``<run>.old-<UTC time>`` and starts over.

Resume identity (``resume_identity``): a checkpoint is continued only when it was made with the same
results-changing settings: the resolved config, the run's description (``spec.info``), its steps, world
size and resolved precision, and the content of the runs it reads. Left out, because they change where,
how often or how fast a run works but never what it computes:
- ``train.log_every`` (the progress display); ``train.checkpoint_every`` (every draw is seeded per
  step, so when state is saved changes nothing); ``train.num_workers`` (samples and masks are seeded by
  stream position, batches.py); ``train.gpus`` (what the launcher asks for: the world size that
  actually ran counts);
- ``paths.*``: locations. The data enter as ``info.data_versions`` (manifest digests) and upstream runs
  as digests of their weights and config.json, so a moved VAE folder still resumes, a retrained one not;
- what no training run reads: ``data.*`` (how datasets are made; their content is data_versions),
  ``benchmarks``, ``eval``, ``profile``, ``weights`` (the perceptual net used enters through info),
  ``ablation`` (it reaches a run as its step count and loss list), ``sample`` except the noise schedule
  (beta_start, beta_end, num_train_timesteps), ``masks`` except ``train_protocols``, and the
  ``model.*_source`` switches (a trained run exists only with source "train"; they pick rules);
- other runs' training sections: a run's own TrainConfig enters once, as ``train.*``, after the --steps
  and fine-tuning-target overrides (distillation also keeps the rest of ``distill``: balance, lambdas,
  perceptual net, losses).
Everything else counts, including settings added to the config later, until it is listed here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from moebius.atomic import write_json, write_text
from moebius.config import Config, TrainConfig, config_hash, to_dict
from moebius.errors import MoebiusError, TrainError
from moebius.progress import progress
from moebius.seeding import derive, torch_generator
from moebius.train.batches import (
    StreamLayout,
    TrainStream,
    batch_loader,
)
from moebius.train.live import write_live
from moebius.train.optim import build_optimizer, lr_at
from moebius.train.state import (
    METRICS_CSV,
    RUN_JSON,
    WEIGHTS_NAME,
    drop_state,
    holds_run,
    latest_state,
    load_state,
    metrics_csv_text,
    move_aside,
    read_run,
    read_state_meta,
    remove_stale_tmp,
    run_lock,
    save_state,
    save_weights,
)

log = logging.getLogger(__name__)

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
    upstream: dict[str, Path | None] = field(default_factory=dict)  # runs it reads (vae, teacher, init)


def accumulation(train: TrainConfig, global_batch: int, world_size: int) -> int:
    """global_batch / (batch_size x world_size), which must be a positive integer."""
    per_step = train.batch_size * world_size
    if global_batch < per_step or global_batch % per_step:
        raise TrainError(
            f"global_batch {global_batch} is not a multiple of batch_size {train.batch_size} x world size {world_size}"
        )
    return global_batch // per_step


# ---------------------------------------------------------------------------------------------
# Resume identity: what must match for a checkpoint to be continued
# ---------------------------------------------------------------------------------------------

# Left out of the resume identity; the module docstring gives the reason for each.
NEUTRAL_TRAIN_FIELDS = ("log_every", "checkpoint_every", "num_workers", "gpus")
NEUTRAL_CONFIG = (
    "paths.*", "data.*", "benchmarks.*", "eval.*", "profile.*", "weights.*", "ablation.*",
    "masks.seed", "masks.workers", "masks.stats_n", "model.*_source", "sample.*",
)
SCHEDULE_KEYS = ("sample.beta_start", "sample.beta_end", "sample.num_train_timesteps")  # kept from sample.*
# A run reads its own TrainConfig (as ``train.*``) and, for distillation, the rest of ``distill``.
RUN_SECTIONS = ("vae_train", "teacher_train", "distill", "finetune")
OWN_EXTRA = {"distill": "distill."}
_IDENTITY_SHOWN = 3  # differences listed in the refusal


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested mappings (lists stay whole values)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _config_key_counts(key: str, kind: str) -> bool:
    """Whether a dotted config key is part of the resume identity of a ``kind`` run."""
    section = key.split(".", 1)[0]
    if section in RUN_SECTIONS:
        extra = OWN_EXTRA.get(kind)
        return extra is not None and key.startswith(extra) and not key.startswith(f"{section}.train.")
    if key in SCHEDULE_KEYS:
        return True
    return not any(fnmatch.fnmatchcase(key, pattern) for pattern in NEUTRAL_CONFIG)


def run_digest(run_dir: Path) -> str:
    """sha256 (16 hex) of a finished run's weights and config.json: the content a downstream run reads
    (an installed run's weights enter as the official file's sha256, recorded in its run.json)."""
    h = hashlib.sha256()
    found = False
    for name in (WEIGHTS_NAME, "config.json"):
        path = Path(run_dir) / name
        if path.is_file():
            found = True
            h.update(name.encode())
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        elif name == WEIGHTS_NAME and (Path(run_dir) / RUN_JSON).is_file():
            installed = read_run(run_dir).get("weights_sha256")
            if installed:
                found = True
                h.update(f"installed:{installed}".encode())
    return f"sha256:{h.hexdigest()[:16]}" if found else "absent"


def resume_identity(cfg: Config, spec: RunSpec, world_size: int, amp: torch.dtype | None) -> dict[str, Any]:
    """The settings a checkpoint must share with this call to be continued (JSON-ready, dotted keys)."""
    ident: dict[str, Any] = {
        k: v for k, v in _flatten(to_dict(cfg)).items() if _config_key_counts(k, spec.kind)
    }
    ident.update(
        {f"train.{k}": v for k, v in _flatten(to_dict(spec.train)).items() if k not in NEUTRAL_TRAIN_FIELDS}
    )
    # Paths to upstream runs are locations: their content enters as upstream.*.
    ident.update({f"info.{k}": v for k, v in _flatten(spec.info).items() if not k.endswith("_dir")})
    ident.update({f"upstream.{k}": run_digest(v) for k, v in spec.upstream.items() if v is not None})
    ident.update(kind=spec.kind, steps=spec.steps, world_size=world_size, autocast=str(amp or torch.float32))
    return json.loads(json.dumps(ident, sort_keys=True, default=str))  # as state.json will hold it


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old → new`` for every differing key, sorted."""
    missing = "(absent)"
    return [
        f"{k}: {old.get(k, missing)} → {new.get(k, missing)}"
        for k in sorted(set(old) | set(new))
        if old.get(k, missing) != new.get(k, missing)
    ]


def _refuse_resume(out_dir: Path, state_dir: Path, changes: list[str]) -> TrainError:
    shown = "; ".join(changes[:_IDENTITY_SHOWN])
    more = f" (+{len(changes) - _IDENTITY_SHOWN} more)" if len(changes) > _IDENTITY_SHOWN else ""
    return TrainError(
        f"cannot resume {out_dir}: its checkpoint {state_dir.relative_to(out_dir)} was made with other "
        f"settings: {shown}{more}; restore them, or start over with --fresh (moves {out_dir.name} aside "
        f"to {out_dir.name}.old-<time>)"
    )


# ---------------------------------------------------------------------------------------------
# Claiming the run folder
# ---------------------------------------------------------------------------------------------


def _claim(out_dir: Path, resume: bool, fresh: bool, stack: contextlib.ExitStack) -> Path | None:
    """Lock ``out_dir`` for this process (until ``stack`` closes), move an earlier run aside when
    ``fresh``, remove stale temporary files, and return the checkpoint folder to resume from."""
    with contextlib.ExitStack() as first:
        first.enter_context(run_lock(out_dir))
        if fresh and holds_run(out_dir):
            old = move_aside(out_dir)  # its lock file moves with it, held until the new folder's is
            stack.enter_context(run_lock(out_dir))
            log.warning("--fresh: moved the earlier run %s aside to %s", out_dir, old)
        else:
            stack.push(first.pop_all())  # hold it for the whole run
    if not resume and not fresh and holds_run(out_dir):
        raise TrainError(f"{out_dir} already holds a run; resume it (--resume) or start over with --fresh (moves it aside)")
    stale = remove_stale_tmp(out_dir)
    if stale:
        log.warning("removed %d temporary file(s) that a killed write left in %s", len(stale), out_dir)
    return latest_state(out_dir) if resume and not fresh else None


def _agree(info: DistInfo, step: Callable[[], Any]) -> Any:
    """Run ``step`` on rank 0 only and hand its result (or its TrainError) to every rank."""
    result: list[Any] = [None, None]
    if info.is_main:
        try:
            result = [step(), None]
        except MoebiusError as exc:
            result = [None, exc]
    if info.world_size > 1:
        dist.broadcast_object_list(result, src=0)
    if result[1] is not None:
        raise result[1]
    return result[0]


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunControl:
    """How a training process treats its run folder; every training entry point takes one.

    ``resume`` continues from the last checkpoint in the folder when its resume identity matches (a
    finished run is left as it is); without it, the folder must not hold a run. ``fresh`` moves an
    earlier run aside to ``<out_dir>.old-<UTC time>`` (never deleting it) and starts over.
    ``stop_after`` ends the process's work after that many steps without writing the final outputs
    (a pre-emption drill: the checkpoint is what survives).
    """

    resume: bool = False
    fresh: bool = False
    stop_after: int | None = None


def run_training(cfg: Config, spec: RunSpec, out_dir: Path, control: RunControl = RunControl()) -> Path:
    """Train ``spec.model`` for ``spec.steps`` steps into ``out_dir`` (``RunControl``: resume, fresh,
    stop_after); return ``out_dir``."""
    resume, fresh, stop_after = control.resume, control.fresh, control.stop_after
    out_dir = Path(out_dir)
    info = setup_distributed()
    if spec.steps < 1:
        raise TrainError(f"{spec.kind}: steps must be >= 1, got {spec.steps}")
    accum = accumulation(spec.train, spec.global_batch, info.world_size)
    with contextlib.ExitStack() as stack:
        found = _agree(info, lambda: _claim(out_dir, resume, fresh, stack))
        state_dir = Path(found) if found is not None else None
        return _train(cfg, spec, out_dir, info, accum, state_dir, resume, stop_after)


def _train(
    cfg: Config,
    spec: RunSpec,
    out_dir: Path,
    info: DistInfo,
    accum: int,
    state_dir: Path | None,
    resume: bool,
    stop_after: int | None,
) -> Path:
    train = spec.train
    amp = autocast_dtype(train.precision, info.device)
    identity = resume_identity(cfg, spec, info.world_size, amp)

    model = spec.model.to(info.device)
    for m in spec.frozen:
        m.to(info.device).eval().requires_grad_(False)
    model.train()
    optimizer = build_optimizer(model.named_parameters(), train)

    start, rows, resumes = 0, [], []
    if state_dir is not None:
        old = read_state_meta(state_dir)
        if "identity" not in old:
            raise TrainError(
                f"cannot resume {out_dir}: its checkpoint {state_dir.name} predates recorded resume settings; "
                f"start over with --fresh (moves {out_dir.name} aside to {out_dir.name}.old-<time>)"
            )
        changes = identity_changes(old["identity"], identity)
        if changes:
            raise _refuse_resume(out_dir, state_dir, changes)
        start, opt_state, rows, meta = load_state(state_dir, model)
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise TrainError(f"{state_dir / 'optimizer.pt'} does not fit this run's optimiser ({exc})") from None
        rows = [r for r in rows if r["step"] <= start]
        resumes = list(meta.get("resumed_at_steps", []))
        if start < spec.steps:
            resumes.append(start)
            if info.is_main:
                log.info("resuming %s from step %d of %d (%s)", out_dir, start, spec.steps, state_dir.name)
    elif resume and (out_dir / WEIGHTS_NAME).is_file() and (out_dir / RUN_JSON).is_file():
        return out_dir  # finished earlier and nothing to continue from: leave it as it is
    if start >= spec.steps:
        if (out_dir / RUN_JSON).is_file() and (out_dir / WEIGHTS_NAME).is_file():
            if info.is_main:
                drop_state(out_dir)  # left by a kill between run.json and its removal
            return out_dir  # already finished: resuming is a no-op
        return _finish(cfg, spec, out_dir, model, rows, info, accum, wall=None, resumes=resumes)

    ddp_model: nn.Module = model
    if info.world_size > 1:
        # Gradients as views of the all-reduce buckets: no second copy of every gradient (0.84 GiB per
        # rank for the paper student; the rehearsal's two CPU ranks of 9 GB each were killed for memory).
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None,
            gradient_as_bucket_view=True,
        )
    layout = StreamLayout(train.batch_size, accum, info.world_size, info.rank)
    loader = iter(batch_loader(spec.stream, layout, start, spec.steps, train.num_workers))
    params = [p for p in model.parameters() if p.requires_grad]
    meta = {"identity": identity, "kind": spec.kind, "resumed_at_steps": resumes}
    bar = progress(total=spec.steps, initial=start, desc=spec.kind, unit="step", disable=not info.is_main)
    t_begin, timed_steps = None, 0

    for step in range(start, spec.steps):
        if step == start + 1:
            t_begin = time.perf_counter()  # the first step pays one-off costs: time the rest
        lr = lr_at(train, step)  # absolute milestones: a shorter run is the schedule truncated
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
                write_live(out_dir, rows)  # DVCLive curves, rewritten whole: a resumed run writes the same bytes
            _barrier()
        if stop_after is not None and done >= stop_after and done < spec.steps:
            bar.close()
            return out_dir
    bar.close()
    wall = (time.perf_counter() - t_begin) / timed_steps if t_begin is not None and timed_steps else None
    return _finish(cfg, spec, out_dir, model, rows, info, accum, wall, resumes)


def _finish(
    cfg: Config,
    spec: RunSpec,
    out_dir: Path,
    model: nn.Module,
    rows: list,
    info: DistInfo,
    accum: int,
    wall: float | None,
    resumes: list[int],
) -> Path:
    """Write model.safetensors, train_metrics.csv, run.json (and the run's extra files) on rank 0."""
    if info.is_main:
        if spec.finalize is not None:
            spec.finalize(model, out_dir)
        save_weights(spec.export if spec.export is not None else model, out_dir / WEIGHTS_NAME)
        write_text(out_dir / METRICS_CSV, metrics_csv_text(rows))
        write_live(out_dir, rows)
        run = {
            **spec.info,
            "weights_kind": learnt_kind(spec.info.get("weights_kind"), spec.upstream),
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
            "resumed_at_steps": resumes,  # steps at which a killed or stopped run was continued
            "torch_threads": torch.get_num_threads(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(out_dir / RUN_JSON, run)  # last: its presence marks a finished run
        drop_state(out_dir)  # the resume state of a finished run is dead weight (2-3x the model)
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


def learnt_kind(kind: str | None, upstream: dict[str, Path | None]) -> str | None:
    """A trained run's ``weights_kind``: ``generated`` when a run it learnt from (VAE, teacher, init) holds
    random-valued files (the rehearsal), since its numbers then mean no more than theirs; else ``kind``."""
    for run in upstream.values():
        if run is not None and (Path(run) / RUN_JSON).is_file() and read_run(run).get("weights_kind") == "generated":
            return "generated"
    return kind


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast in ``dtype``, or a null context for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
