"""File hashing and the ledger of checksums we recorded ourselves.

Most of the archives the paper's datasets come in have no published sha256 (Places365 publishes
md5 sums, the Hugging Face and Google Drive sources publish nothing we can pin). For those the
rule is "record ours on first download": the sha256 of the first complete download is written to
``checksums.json`` beside the downloads, and every later download or reuse of that file is checked
against it, so a silently changed upstream file or a corrupted copy is caught.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from moebius.atomic import write_json
from moebius.errors import DataError

LEDGER_NAME = "checksums.json"
_CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks so large archives never sit in memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, hex."""
    return file_digest(path, "sha256")


class ChecksumLedger:
    """``checksums.json`` in a download directory: file name -> sha256 we measured ourselves."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LEDGER_NAME
        self._entries: dict[str, str] = {}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise DataError(f"unreadable checksum ledger {self.path}: {exc}") from exc
            if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
                raise DataError(f"checksum ledger {self.path} is not a mapping of name -> sha256")
            self._entries = dict(loaded)

    def get(self, name: str) -> str | None:
        """The recorded sha256 for ``name``, or None when the file was never downloaded here."""
        return self._entries.get(name)

    def record(self, name: str, sha256: str) -> None:
        """Remember ``sha256`` for ``name`` (atomic rewrite of the ledger)."""
        self._entries[name] = sha256
        write_json(self.path, self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
