"""The one exception type of the diffusion package (bad sampler inputs), with one-line messages."""

from __future__ import annotations


class SamplerError(ValueError):
    """Sampler inputs with the wrong shape, range or settings for this model."""
