"""The Moebius student U-Net (paper Sec. 3.2, Fig. 2; Tab. 2 Exp ⑨): LλMI blocks + DWConv residual blocks.

Three levels (320, 640, 1280 at full size), two LλMI transformers per down level and three per up
level, no mid block, no downsampler after the last level; every residual block, conv_in and conv_out
depthwise-separable; downsamplers/upsamplers plain 3×3 convs. 226,041,531 parameters at ``paper`` size.
"""

from __future__ import annotations

from moebius.models.presets import Preset
from moebius.models.unet import UNetSpec


def student_spec(preset: Preset) -> UNetSpec:
    """The student's architecture at the given preset's sizes."""
    return UNetSpec(
        block_out_channels=preset.student_widths,
        down_attention=(True, True, True),
        up_attention=(True, True, True),
        mid_block=False,
        self_attention="LocalLambda",
        cross_attention="InteractiveLambda",
        ffn="MixFFN",
        conv="DWConv",
        latent_size=preset.latent_size,
        embed_dim=preset.embed_dim,
        context_dim=preset.context_dim,
        heads=preset.heads,
        norm_groups=preset.norm_groups,
        lambda_r=preset.lambda_r,
        layers_per_block=preset.layers_per_block,
        xavier_linear_init=True,  # the official student calls initialize_weights()
    )
