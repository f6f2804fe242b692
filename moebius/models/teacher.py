"""The PixelHacker teacher U-Net (paper Sec. 3.3 and 4.1; Tab. 2 baseline before stage removal).

diffusers ``UNet2DConditionModel`` topology with GLA self-attention: four levels (320, 640, 1280, 1280),
CrossAttnDownBlock2D ×3 + DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D + CrossAttnUpBlock2D ×3;
attn1 = fla GatedLinearAttention, attn2 = standard cross-attention, GEGLU FFN, 3×3 conv residual blocks.
862,251,708 parameters at ``paper`` size.
"""

from __future__ import annotations

from moebius.models.presets import Preset
from moebius.models.unet import UNetSpec


def teacher_spec(preset: Preset) -> UNetSpec:
    """The teacher's architecture at the given preset's sizes."""
    return UNetSpec(
        block_out_channels=preset.teacher_widths,
        down_attention=(True, True, True, False),
        up_attention=(False, True, True, True),
        mid_block=True,
        self_attention="GLA",
        cross_attention="CA",
        ffn="FFN",
        conv="Conv",
        latent_size=preset.latent_size,
        embed_dim=preset.embed_dim,
        context_dim=preset.context_dim,
        heads=preset.heads,
        norm_groups=preset.norm_groups,
        lambda_r=preset.lambda_r,
        layers_per_block=preset.layers_per_block,
        xavier_linear_init=False,  # diffusers' default init; official weights replace it at full scale
    )
