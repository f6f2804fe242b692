"""The exception types of the data package.

Every bad input (unknown dataset, failed or truncated download, checksum mismatch, unsafe archive,
unreadable image, malformed manifest) raises a ``DataError`` subclass with a one-line message; the
CLI turns it into a one-line error and a non-zero exit, so nothing in here prints or exits itself.
"""

from __future__ import annotations


class DataError(Exception):
    """A dataset, file or manifest that cannot be used as asked."""


class DownloadError(DataError):
    """A transfer that failed or ended early; any partial data stays as ``<name>.part`` for resume."""


class ChecksumError(DataError):
    """Bytes that do not match their published (or previously recorded) checksum or size."""


class UnsafeArchiveError(DataError):
    """An archive member that would land outside the target directory, or a device file."""


class UnknownNameError(DataError, KeyError):
    """A registry lookup (dataset, split, benchmark, preprocessing) with a name that is not known."""

    def __str__(self) -> str:  # KeyError quotes its message; keep the one-line text readable
        return str(self.args[0]) if self.args else ""
