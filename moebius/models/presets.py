"""Size presets: ``paper`` (official sizes, paper Sec. 3-4) and ``smoke`` (CPU minutes), same classes.

Only sizes differ between presets. ``smoke`` keeps the topology of ``paper`` and its ratios: 64×64
images through a factor-4 VAE give 16×16 latents; the student's levels are 16→8→4 (4×4 at its last
down block) and the teacher's 16→8→4→2 (4×4 after its first up block), so the coarse distillation
features meet at 1/4 of the latent side exactly as 16×16 features do at full scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from moebius.registry import Registry


@dataclass(frozen=True)
class Preset:
    """The sizes that a preset fixes; everything else comes from the architecture spec."""

    name: str
    image_size: int  # pixels per side
    latent_size: int  # latent side = image_size / VAE factor
    student_widths: tuple[int, int, int]  # student and Table 2 (3-level) variants
    teacher_widths: tuple[int, int, int, int]  # PixelHacker (4 levels)
    embed_dim: int  # LCG embedding width
    context_dim: int  # width after encoder_hid_proj (cross-attention / Interactive-λ context)
    norm_groups: int  # GroupNorm groups; must divide every width and every skip concat
    lambda_r: int  # Local-λ window
    heads: int = 8  # λ / attention heads (d_k = C / heads)
    layers_per_block: int = 2  # resnets (+ transformers) per down level; up levels get one more


PRESETS: Registry[Preset] = Registry("preset", {
    "paper": Preset(
        name="paper",
        image_size=512,
        latent_size=64,
        student_widths=(320, 640, 1280),
        teacher_widths=(320, 640, 1280, 1280),
        embed_dim=3072,
        context_dim=768,
        norm_groups=32,
        lambda_r=15,
    ),
    "smoke": Preset(
        name="smoke",
        image_size=64,
        latent_size=16,
        student_widths=(32, 64, 128),
        teacher_widths=(32, 64, 128, 128),
        embed_dim=64,
        context_dim=32,
        norm_groups=8,
        # DEVIATION (paper §4.1, r = 15): at a 16×16 latent a 15×15 window is global; 5 keeps the
        # window about the same fraction of the grid as 15 is of 64.
        lambda_r=5,
        # DEVIATION (official configs: 2 per level): one residual/transformer pair per down level (two
        # per up level) halves the op count, which bounds CPU time at these tiny widths; the level
        # structure, block_outputs and the coarse-feature indices are unchanged.
        layers_per_block=1,
    ),
})


def get_preset(name: str) -> Preset:
    """The preset called ``name``; unknown names raise ``UnknownNameError`` with a hint."""
    return PRESETS.get(name)
