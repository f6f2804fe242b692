"""Training and distillation (paper Sec. 3.3 and 4.1): losses, adaptive balancing, Muon, the loop.

Public entry points (the CLI calls these): ``train_vae``, ``train_teacher``, ``distill``, ``finetune``,
``prepare_official``, ``load_run``, ``RunControl`` (resume / fresh / stop_after), ``load_vae``, ``validation_loss``, ``compare_kd``.
"""

from moebius.errors import TrainError
from moebius.train.loop import RunControl
from moebius.train.official import prepare_official
from moebius.train.runs import (
    distill,
    finetune,
    load_run,
    load_vae,
    train_teacher,
    train_vae,
)
from moebius.train.validate import compare_kd, validation_loss

__all__ = [
    "RunControl",
    "TrainError",
    "compare_kd",
    "distill",
    "finetune",
    "load_run",
    "load_vae",
    "prepare_official",
    "train_teacher",
    "train_vae",
    "validation_loss",
]
