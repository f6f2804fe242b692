"""Per-image noise for sampling, so that results do not depend on batch size or order.

Following EDM's sampler (one seeded generator per image), each image draws all of its noise from
its own ``torch.Generator``, seeded with ``moebius.seeding.image_seed(run seed, image id)``: the same
image gets the same noise in any batch, on any worker, on a resumed run. Noise is drawn on the CPU
and moved to the model's device, so CPU and GPU runs start from the same numbers.
"""

from __future__ import annotations

import torch


def image_generators(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded with ``seeds[i]``."""
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]


def randn_per_image(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """A (B, *shape) standard normal tensor whose row i comes from ``generators[i]`` only."""
    rows = [torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)
