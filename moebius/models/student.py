"""The Moebius student U-Net (paper Sec. 3.2, Fig. 2; Tab. 2 Exp ⑨): LλMI blocks + DWConv residual blocks.

Three levels (320, 640, 1280 at full size), two LλMI transformers per down level and three per up
level, no mid block, no downsampler after the last level; every residual block, conv_in and conv_out
depthwise-separable; downsamplers/upsamplers plain 3×3 convs. 226,041,531 parameters at ``paper`` size.
"""

from __future__ import annotations

from moebius.models.presets import Preset
from moebius.models.unet import UNetSpec
from moebius.models.variants import EXPERIMENTS, variant_spec


def student_spec(preset: Preset) -> UNetSpec:
    """The student's architecture at the given preset's sizes: Exp ① with all four of Table 2's switches
    (Local-λ, Interactive-λ, Mix-FFN, DWConv), i.e. Exp ⑨; Xavier init as the official student's
    ``initialize_weights()``."""
    return variant_spec(EXPERIMENTS[9], preset)
