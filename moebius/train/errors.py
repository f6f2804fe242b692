"""The one error type of the training package: bad runs fail early with a one-line message."""

from __future__ import annotations


class TrainError(RuntimeError):
    """A training, distillation or checkpoint request that cannot be carried out as asked."""
