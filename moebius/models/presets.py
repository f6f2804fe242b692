"""Size presets: ``paper`` (official sizes, paper Sec. 3-4), ``smoke`` (CPU minutes) and ``tiny`` (the
unit tests' size: a training step in a fraction of a second), all of the same classes.

Only sizes differ between presets. ``smoke`` keeps the topology of ``paper`` and its ratios: 64×64
images through a factor-4 VAE give 16×16 latents; the student's levels are 16→8→4 (4×4 at its last
down block) and the teacher's 16→8→4→2 (4×4 after its first up block), so the coarse distillation
features meet at 1/4 of the latent side exactly as 16×16 features do at full scale. ``tiny`` halves
the sides again (32×32 images, 8×8 latents: coarse features at 2×2) with widths of 8-32, so that the
default test suite trains, resumes and samples the real architecture instead of stand-ins.
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
    # Unit tests only: the smallest sizes every block accepts (two heads of 4 channels at the first
    # level, GroupNorm of 4 groups); nothing here is meant to learn anything.
    "tiny": Preset(
        name="tiny",
        image_size=32,
        latent_size=8,
        student_widths=(8, 16, 32),
        teacher_widths=(8, 16, 32, 32),
        embed_dim=16,
        context_dim=8,
        norm_groups=4,
        lambda_r=3,  # DEVIATION (paper §4.1, r = 15): as for smoke, a window well inside the 8×8 grid
        heads=2,
        layers_per_block=1,  # DEVIATION (official configs: 2 per level): as for smoke
    ),
})


def get_preset(name: str) -> Preset:
    """The preset called ``name``; unknown names raise ``UnknownNameError`` with a hint."""
    return PRESETS.get(name)
