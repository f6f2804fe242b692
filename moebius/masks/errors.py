"""The one exception type of the mask package.

Every bad input (unknown protocol, wrong mask size, non-binary pixels, unknown polarity, missing id)
raises ``MaskError`` with a one-line message; the CLI turns it into a one-line error and a non-zero
exit, so nothing in here prints or exits by itself.
"""

from __future__ import annotations


class MaskError(ValueError):
    """A mask, mask set or protocol request that cannot be honoured."""
