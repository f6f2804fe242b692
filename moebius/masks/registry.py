"""Named, versioned mask protocols: ``list_protocols()``, ``get_protocol(name, version=None)``.

Source: MASKS.md (generator tables) and DESIGN.md (``masks/<protocol>/v<version>/``). A protocol is
a name, a version, a native size and a draw function ``rng -> bool mask (True = hole)``. A version
is bumped whenever the masks a (name, seed, id) produces would change; the version is part of each
mask's seed (``moebius.seeding.mask_rng``), so two versions never share masks.

| name | generator | counts / config |
|---|---|---|
| mat_{large,small}_{512,256} | MAT RandomMask (brush + boxes) | A, B, C from MASKS.md |
| migan_{256,512} | CoModGAN / MI-GAN RandomMask | A=10, B=5, C=20 |
| lama_{thick,medium,thin}_{256,512} | LaMa mixed strokes / boxes + dataset pipeline | random_*.yaml |
| places2_test | LaMa thick_512 candidates filtered to hole ratio in [0.4, 0.5] | hole_filter.py |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from moebius.errors import MaskError
from moebius.masks.brush_box import BrushBoxConfig, random_mask
from moebius.masks.hole_filter import draw_in_hole_range
from moebius.masks.lama import LamaConfig, lama_candidate, lama_mask
from moebius.registry import Registry

DrawFn = Callable[[np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Protocol:
    """One mask protocol at one version."""

    name: str
    version: int  # starts at 1; bump when the masks would change
    size: int  # native side in pixels; stored sets of another size are nearest-resized from it
    family: str  # "mat" | "migan" | "lama" | "places2_test"
    source: str  # where the algorithm and its numbers come from
    draw: DrawFn = field(repr=False, compare=False)  # rng -> (size, size) bool, True = hole


_MAT = "MAT RandomMask (fenglinglwb/MAT datasets/mask_generator_*), MASKS.md"
_MIGAN = "CoModGAN / MI-GAN RandomMask (zsyzzsoft/co-mod-gan, Picsart-AI-Research/MI-GAN), MASKS.md"
_LAMA = "LaMa gen_mask_dataset + configs/data_gen/random_{}.yaml (advimman/lama), MASKS.md"

# MASKS.md table: (A boxes <= s/2, B boxes <= s, C stroke tries).
_BRUSH_BOX: dict[str, tuple[str, str, BrushBoxConfig]] = {
    "mat_large_512": ("mat", _MAT, BrushBoxConfig(512, 5, 3, 9)),
    "mat_small_512": ("mat", _MAT, BrushBoxConfig(512, 3, 2, 4)),
    "mat_large_256": ("mat", _MAT, BrushBoxConfig(256, 4, 2, 8)),
    "mat_small_256": ("mat", _MAT, BrushBoxConfig(256, 2, 2, 3)),
    "migan_256": ("migan", _MIGAN, BrushBoxConfig(256, 10, 5, 20)),
    "migan_512": ("migan", _MIGAN, BrushBoxConfig(512, 10, 5, 20)),
}

# MASKS.md table of LaMa data-gen configs.
LAMA_CONFIGS: dict[str, LamaConfig] = {
    "thick_256": LamaConfig(256, 1, 5, max_width=100, max_len=200, box_min=1, box_max=3,
                            bbox_min=30, bbox_max=150, margin=10),
    "thick_512": LamaConfig(512, 1, 5, max_width=250, max_len=450, box_min=1, box_max=4,
                            bbox_min=30, bbox_max=300, margin=10),
    "medium_256": LamaConfig(256, 4, 5, max_width=50, max_len=100, box_min=1, box_max=5,
                             bbox_min=10, bbox_max=50, margin=0),
    "medium_512": LamaConfig(512, 4, 10, max_width=100, max_len=200, box_min=1, box_max=5,
                             bbox_min=30, bbox_max=150, margin=0),
    "thin_256": LamaConfig(256, 4, 50, max_width=10, max_len=40, box_proba=0.0),
    "thin_512": LamaConfig(512, 4, 70, max_width=20, max_len=100, box_proba=0.0),
}

PLACES2_TEST_CONFIG = "thick_512"  # the LaMa config places2_test draws from (see hole_filter.py)
PLACES2_TEST_RANGE = (0.4, 0.5)  # closed hole-ratio window ("40–50% masked area")
PLACES2_TEST_MAX_DRAWS = 10_000  # bound per mask; measured acceptance ~11 %, so ~9 draws on average


def _build() -> Registry[dict[int, Protocol]]:
    table: dict[str, dict[int, Protocol]] = {}

    def add(p: Protocol) -> None:
        table.setdefault(p.name, {})[p.version] = p

    for name, (family, source, cfg) in _BRUSH_BOX.items():
        add(Protocol(name, 1, cfg.size, family, source, partial(random_mask, cfg=cfg)))
    for key, cfg in LAMA_CONFIGS.items():
        add(Protocol(f"lama_{key}", 1, cfg.size, "lama", _LAMA.format(key), partial(lama_mask, cfg=cfg)))
    base = LAMA_CONFIGS[PLACES2_TEST_CONFIG]
    lo, hi = PLACES2_TEST_RANGE
    add(Protocol(
        "places2_test", 1, base.size, "places2_test",
        f"our reconstruction of LDM's Places2 40-50% masks: {_LAMA.format(PLACES2_TEST_CONFIG)} "
        f"filtered to hole ratio in [{lo}, {hi}]",
        partial(draw_in_hole_range, draw=partial(lama_candidate, cfg=base), lo=lo, hi=hi,
                max_draws=PLACES2_TEST_MAX_DRAWS, label="places2_test"),
    ))
    return Registry("mask protocol", sorted(table.items()))


PROTOCOLS = _build()
"""Protocol name -> {version: Protocol}."""


def list_protocols() -> list[str]:
    """All protocol names, sorted."""
    return list(PROTOCOLS.names())


def get_protocol(name: str, version: int | None = None) -> Protocol:
    """The protocol ``name`` at ``version`` (latest if None); ``UnknownNameError`` with a hint on a typo."""
    versions = PROTOCOLS.get(name)
    if version is None:
        return versions[max(versions)]
    if version not in versions:
        raise MaskError(f"mask protocol '{name}' has no version {version}; known: {sorted(versions)}")
    return versions[version]
