"""Table 2's architecture ablation (paper Sec. 3.2, Tab. 2; supplementary Exps ⑪-⑮).

Every variant is Exp ① — PixelHacker with its last down stage removed (3 levels, no mid block) — with
four switches: self-attention GLA | LocalLambda, cross-attention CA | InteractiveLambda, FFN | MixFFN,
Conv | DWConv (DWConv replaces every residual-block conv plus conv_in and conv_out; down/up-samplers
stay 3×3 convs). Experiments come in pairs that share an architecture and differ only in whether the
distillation of Sec. 3.3 is used (``kd``), a training switch. Exp ⑨ is the Moebius student.
"""

from __future__ import annotations

from dataclasses import dataclass

from moebius.errors import UnknownNameError
from moebius.models.blocks import ConvKind, CrossAttn, FFNKind, SelfAttention
from moebius.models.presets import Preset
from moebius.models.teacher import teacher_spec
from moebius.models.unet import UNetSpec


@dataclass(frozen=True)
class Experiment:
    """One row of Table 2: the four architecture switches and the training switch."""

    exp: int
    self_attention: SelfAttention
    cross_attention: CrossAttn
    ffn: FFNKind
    conv: ConvKind
    kd: bool  # trained with the multi-granularity distillation (True) or the plain task loss (False)

    @property
    def name(self) -> str:
        return f"exp{self.exp}"

    @property
    def uses_lambda(self) -> bool:
        return self.self_attention == "LocalLambda" or self.cross_attention == "InteractiveLambda"


def _row(exp: int, sa: SelfAttention, ca: CrossAttn, ffn: FFNKind, conv: ConvKind, kd: bool) -> Experiment:
    return Experiment(exp, sa, ca, ffn, conv, kd)


EXPERIMENTS: dict[int, Experiment] = {
    e.exp: e
    for e in (
        _row(1, "GLA", "CA", "FFN", "Conv", False),
        _row(2, "LocalLambda", "CA", "FFN", "Conv", False),
        _row(3, "GLA", "InteractiveLambda", "FFN", "Conv", False),
        _row(4, "GLA", "CA", "MixFFN", "Conv", False),
        _row(5, "GLA", "CA", "FFN", "DWConv", False),
        _row(6, "LocalLambda", "InteractiveLambda", "FFN", "Conv", False),
        _row(7, "LocalLambda", "InteractiveLambda", "FFN", "Conv", True),
        _row(8, "LocalLambda", "InteractiveLambda", "FFN", "DWConv", True),
        _row(9, "LocalLambda", "InteractiveLambda", "MixFFN", "DWConv", True),
        _row(10, "LocalLambda", "InteractiveLambda", "MixFFN", "DWConv", False),
        _row(11, "GLA", "CA", "FFN", "Conv", True),
        _row(12, "LocalLambda", "CA", "FFN", "Conv", True),
        _row(13, "GLA", "InteractiveLambda", "FFN", "Conv", True),
        _row(14, "GLA", "CA", "MixFFN", "Conv", True),
        _row(15, "GLA", "CA", "FFN", "DWConv", True),
    )
}


def get_experiment(name: str | int) -> Experiment:
    """``Experiment`` for ``'exp7'`` / ``7``; unknown names raise with a hint."""
    key = str(name)
    num = key[3:] if key.startswith("exp") else key
    if num.isdigit() and int(num) in EXPERIMENTS:
        return EXPERIMENTS[int(num)]
    raise UnknownNameError.of("experiment", key, [e.name for e in EXPERIMENTS.values()])


def three_level_base(preset: Preset) -> UNetSpec:
    """Exp ①: PixelHacker without its last down stage (3 CrossAttn levels, no mid block)."""
    return teacher_spec(preset).replace(
        block_out_channels=preset.student_widths,
        down_attention=(True, True, True),
        up_attention=(True, True, True),
        mid_block=False,
    )


def variant_spec(experiment: Experiment, preset: Preset) -> UNetSpec:
    """Exp ① with the experiment's switches applied."""
    return three_level_base(preset).replace(
        self_attention=experiment.self_attention,
        cross_attention=experiment.cross_attention,
        ffn=experiment.ffn,
        conv=experiment.conv,
        # the λ models are built by the Moebius code, whose constructor calls initialize_weights()
        xavier_linear_init=experiment.uses_lambda,
    )
