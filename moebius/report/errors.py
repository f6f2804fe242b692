"""The one exception type of the report package.

Every bad input (unknown model key, duplicate records for one table cell, a table that fails its
schema, a row with no record behind it) raises ``ReportError`` with a one-line message; the CLI
turns it into a one-line error and a non-zero exit.
"""

from __future__ import annotations


class ReportError(ValueError):
    """Records, reference tables or table CSVs that cannot be turned into a faithful report."""
