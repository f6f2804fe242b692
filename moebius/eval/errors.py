"""The one exception type of the evaluation package.

Every evaluation input that cannot be honoured (unknown benchmark or baseline, an image without a
mask, a baseline that cannot run at this scale, missing weights) raises ``EvalError`` with a
one-line message; the CLI turns it into a one-line error and a non-zero exit.
"""

from __future__ import annotations


class EvalError(RuntimeError):
    """An evaluation request that cannot be carried out as asked."""
