"""The four distillation losses of Moebius (paper Sec. 3.3), as small callable classes.

Names follow the paper (not the official code, which swaps C and F; see balance.py):
- L_C_KD: coarse knowledge distillation, MSE between the student's feature after its last down block
  and the teacher's feature after its first up block (both 1/4 of the latent side; block_outputs
  indices ``coarse_feature_index``: student 2, teacher 5);
- L_F_KD: fine knowledge distillation, MSE between the student's and the teacher's predicted ε;
- L_task: the standard diffusion loss, MSE between the student's ε and the true noise;
- L_perceptual: E-LatentLPIPS between the student's predicted x̂0 and the x̂0 of the true noise
  (official form) or the true latent x0 (plain form).
All reductions are means over every element, computed in fp32 whatever the autocast dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from moebius.diffusion.schedule import NoiseSchedule
from moebius.errors import TrainError

LOSS_NAMES = ("c_kd", "f_kd", "task", "perceptual")
KD_LOSSES = ("c_kd", "f_kd")


def _mse(a: torch.Tensor, b: torch.Tensor, what: str) -> torch.Tensor:
    if a.shape != b.shape:
        raise TrainError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    return F.mse_loss(a.float(), b.float())


class CoarseKDLoss:
    """L_C_KD = ‖x̂_C_T − x̂_C_S‖² (mean) on the 1/4-resolution features."""

    def __init__(self, student_index: int, teacher_index: int) -> None:
        self.student_index, self.teacher_index = student_index, teacher_index

    def __call__(self, student_blocks: Sequence[torch.Tensor], teacher_blocks: Sequence[torch.Tensor]) -> torch.Tensor:
        s = student_blocks[self.student_index]  # (B, C, h/4, w/4)
        t = teacher_blocks[self.teacher_index].detach()
        return _mse(s, t, "L_C_KD (student vs teacher coarse feature)")


class FineKDLoss:
    """L_F_KD = ‖x̂_T − x̂_S‖² (mean) between the predicted noises."""

    def __call__(self, eps_student: torch.Tensor, eps_teacher: torch.Tensor) -> torch.Tensor:
        return _mse(eps_student, eps_teacher.detach(), "L_F_KD")


class TaskLoss:
    """L_task = ‖ε − ε̂_S‖² (mean): the ε-prediction diffusion loss (the noise includes the offset)."""

    def __call__(self, eps_student: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return _mse(eps_student, noise, "L_task")


PERCEPTUAL_FORMS = ("official", "plain")


class PerceptualLoss:
    """L_perceptual = mean_B E-LatentLPIPS(x̂0(ε̂_S), target), in one of two forms.

    ``official`` is the call of the official train_distillation.py: the target is x̂0(ε), the x0
    implied by the true noise at the same z_t and t, and the metric runs with ``normalize=True``
    (latents multiplied by 0.13025 once more, the L1 term included) and ``ensembling=True`` (one
    random 'bg' augmentation per sample, applied to both, drawn from the step's ``generator``).
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, form: str = "official") -> None:
        if form not in PERCEPTUAL_FORMS:
            raise TrainError(f"unknown perceptual form {form!r} ({' | '.join(PERCEPTUAL_FORMS)})")
        self.net, self.schedule, self.form = net, schedule, form

    def __call__(
        self,
        eps_student: torch.Tensor,
        z_t: torch.Tensor,
        t: torch.Tensor,
        x0: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        x0_hat = self.schedule.predict_x0(z_t, eps_student, t)  # (B, 4, h, w), fp32
        if self.form == "official":
            if noise is None or generator is None:
                raise TrainError("the official perceptual form needs the true noise and the step's generator")
            target = self.schedule.predict_x0(z_t, noise, t)  # x̂0(ε): x0 up to the rounding of z_t
            return self.net(x0_hat, target, normalize=True, ensembling=True, generator=generator).mean()
        # DEVIATION (official code): the plain form compares with x0 itself, feeds the once-scaled
        # latents the sdxl weights were calibrated on (no second 0.13025), and skips the augmentation
        # ensemble; on the measured official batch L_P was 4.704 this way against 0.880 officially.
        return self.net(x0_hat, x0.float()).mean()


def check_losses(losses: Sequence[str]) -> tuple[str, ...]:
    """Validate a loss subset (Table 5), returned in canonical order."""
    unknown = [x for x in losses if x not in LOSS_NAMES]
    if unknown or not losses:
        raise TrainError(f"losses must be a non-empty subset of {LOSS_NAMES}, got {tuple(losses)}")
    return tuple(x for x in LOSS_NAMES if x in losses)
