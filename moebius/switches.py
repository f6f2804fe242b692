"""Where the paper and the official code disagree: one switch per disagreement, owned here.

Each switch names the config key that selects the behaviour, what the paper says, what the official
code does, and which value is the default (the form that produced the released weights and the
paper's numbers, unless the paper states otherwise). ``switch_values(cfg)`` is what every result record
carries under ``settings``; the report's "Paper vs code" section lists these switches beside every
``# DEVIATION`` marker in the package (``moebius.report.deviations``), so neither can drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moebius.config import Config


@dataclass(frozen=True)
class Switch:
    """One paper-vs-code disagreement and the config key that picks a side."""

    name: str  # the key under a record's ``settings``
    key: str | None  # dotted config path; None when both forms are always computed and reported
    paper: str
    official: str

    def value(self, cfg: Config) -> Any:
        if self.key is None:
            return "both"
        obj: Any = cfg
        for part in self.key.split("."):
            obj = getattr(obj, part)
        return obj


SWITCHES: tuple[Switch, ...] = (
    Switch(
        "balance",
        "distill.balance",
        paper="Eq. 4-5: ratios of squared gradient norms, no guard (`paper`)",
        official="`cal_adaptive_weights_type8`: plain norms, ε, clamps, λ_KD 0.01 / λ_task 0.5 / λ_P 0.5 (`official`)",
    ),
    Switch(
        "balance_sync",
        "distill.balance_sync",
        paper="not stated",
        official="each rank computes the adaptive weights from its own micro-batch, no collective (`per_rank`); "
        "`all_reduce` averages them over the ranks",
    ),
    Switch(
        "lr_schedule",
        "distill.train.lr_milestones",
        paper="lr 2e-4, ×0.1 at 111K and 129K of 138K; Tab. 2/5 = the 18K checkpoint of that schedule (flat 2e-4); "
        "milestones are absolute steps, so an ablation run is the main schedule truncated",
        official="train_demo.sh: lr 1e-4 constant (a demo at batch 2; the paper's schedule is used)",
    ),
    Switch(
        "train_pipeline",
        "distill.train.pipeline",
        paper="not stated",
        official="RemovalDataset_v1_2: LANCZOS short-side resize, LaMa random_medium_512 masks, 99 % dilated "
        "(k 3/5/7, 1-2 iterations), hole-keeping square crop, h-flip 0.5 (`official`); `project`: centre crop, "
        "bicubic, masks uniform over masks.train_protocols, no dilation or flip",
    ),
    Switch(
        "lcg_ids",
        "distill.train.lcg_ids",
        paper="not stated (LCG from PixelHacker)",
        official="`_get_input_ids`: ids follow the sample's task, background 0-9, foreground 10-19; every dataset "
        "here is mask-free = background (`category`); `cfg_dropout`: 10 % get 10-19",
    ),
    Switch(
        "gradient_checkpointing",
        "distill.train.gradient_checkpointing",
        paper="not stated",
        official="`--gradient_checkpointing` on the residual blocks (true); gradients unchanged, BatchNorm running "
        "statistics updated on every recompute",
    ),
    Switch(
        "finetune_lr",
        "finetune.train.lr",
        paper="not stated (steps and batch only)",
        official="no fine-tuning script released: ASSUMPTION 2e-5, constant (finetune.train.lr_milestones)",
    ),
    Switch(
        "finetune_optimizer",
        "finetune.train.optimizer",
        paper="not stated",
        official="no fine-tuning script released: ASSUMPTION Muon + AdamW as the distillation",
    ),
    Switch(
        "finetune_lcg_ids",
        "finetune.train.lcg_ids",
        paper="not stated",
        official="no fine-tuning script released: ASSUMPTION the distillation dataset's rule (`category`)",
    ),
    Switch(
        "finetune_pipeline",
        "finetune.train.pipeline",
        paper="not stated",
        official="no fine-tuning script released: ASSUMPTION the distillation dataset's pipeline (`official`)",
    ),
    Switch(
        "sampler_start",
        "sample.start",
        paper="DDIM from pure noise (`noise`)",
        official="pipeline starts from the ground-truth latent noised to t≈900 (`gt_noised`)",
    ),
    Switch(
        "score_size",
        "sample.score_size",
        paper="256-px benchmarks scored at 256 (Sec. 4.1); model input resized bicubic there and back (`benchmark`)",
        official="pipeline resizes the 256 image and mask LANCZOS to 512 and returns 512: scored at 512 against "
                 "the LANCZOS-512 ground truth (`model`)",
    ),
    Switch(
        "mask_source",
        "masks.source",
        paper="masks drawn by each protocol's generator (MAT / MI-GAN / LaMa; seeded here) (`generated`)",
        official="the authors' published evaluation masks (Google Drive, imported with `moebius masks import`; "
                 "`official`); a benchmark's own `mask_source` overrides",
    ),
    Switch(
        "paste_back",
        "sample.paste_back",
        paper="not stated; MAT / LaMa score a hard composite, output·hole + input·known (`hard`)",
        official="infer_moebius.py --pst (default on): blend through the hole mask blurred by PIL "
        "GaussianBlur(radius=3), pixel space, 8-bit, at the model's 512 px; the blend reads the whole input, "
        "so ground truth near the hole edge enters the answer (`blurred`); PixelHacker's infer script "
        "pastes nothing (`none`, its rows)",
    ),
    Switch(
        "flop_convention",
        None,
        paper="GFLOPs column = thop multiply-accumulates (`gmacs_thop`)",
        official="—; FlopCounterMode counts 2 FLOPs per MAC (`gflops_torch`); both are reported",
    ),
)


def switch_values(cfg: Config) -> dict[str, Any]:
    """{switch name: the value this config uses} — recorded in every result record."""
    return {s.name: s.value(cfg) for s in SWITCHES}
