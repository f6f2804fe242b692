"""Exceptions raised by the model package (the CLI prints them as one-line errors)."""

from __future__ import annotations


class ModelError(Exception):
    """Base class for every error raised by ``moebius.models``."""


class UnknownModelError(ModelError, KeyError):
    """A model, preset or experiment name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message; keep it one plain line
        return str(self.args[0]) if self.args else ""


class ModelConfigError(ModelError, ValueError):
    """An architecture spec that cannot be built (bad widths, groups, window size...)."""


class ModelInputError(ModelError, ValueError):
    """A forward-pass input with the wrong shape, dtype or size for this model."""


class CheckpointError(ModelError):
    """A weight file that cannot be read or does not fit the model."""
