"""The one error root of the package: every user-facing failure is a ``MoebiusError``.

The CLI catches ``MoebiusError`` (and nothing else by name) and prints it as one line,
``moebius: error: …``, with exit status 2. Anything else is a bug and keeps its traceback. Each phase
has one subclass so that callers can catch a phase's errors; the extra built-in base of some
(``ValueError``, ``KeyError``) keeps ``except ValueError`` callers working.

``UnknownNameError`` owns the "did you mean" hint: registries raise it with the name asked for and the
names they know, and the message is written once, here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MoebiusError(Exception):
    """An input or request that cannot be honoured as asked (one-line message, no traceback)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix for ``name``, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UnknownNameError(MoebiusError, KeyError):
    """A lookup by name that finds nothing; ``UnknownNameError.of`` writes the hint and the listing."""

    @classmethod
    def of(cls, what: str, name: object, known: Iterable[str]) -> "UnknownNameError":
        """``unknown <what> 'name' (did you mean 'x'?); known: a, b, c``."""
        known_list = sorted(str(k) for k in known)
        return cls(f"unknown {what} {name!r}{did_you_mean(str(name), known_list)}; known: {', '.join(known_list)}")

    def __str__(self) -> str:  # KeyError would quote the message; keep it one plain line
        return str(self.args[0]) if self.args else ""


# --- one subclass per phase -------------------------------------------------------------------------


class ConfigError(MoebiusError, ValueError):
    """A config file or value that does not fit the schema (named by its dotted path)."""


class RecordError(MoebiusError, ValueError):
    """A result record that is missing, malformed or inconsistent."""


class DataError(MoebiusError):
    """A dataset, file or manifest that cannot be used as asked."""


class DownloadError(DataError):
    """A transfer that failed or ended early; any partial data stays as ``<name>.part`` for resume."""


class ChecksumError(DataError):
    """Bytes that do not match their published (or previously recorded) checksum or size."""


class UnsafeArchiveError(DataError):
    """An archive member that is a link, a device, lands outside the target, or expands too much."""


class MaskError(MoebiusError, ValueError):
    """A mask, mask set or protocol request that cannot be honoured."""


class ModelError(MoebiusError):
    """A model that cannot be built, fed or loaded as asked."""


class ModelConfigError(ModelError, ValueError):
    """An architecture spec that cannot be built (bad widths, groups, window size...)."""


class ModelInputError(ModelError, ValueError):
    """A forward-pass input with the wrong shape, dtype or size for this model."""


class CheckpointError(ModelError):
    """A weight file that cannot be read or does not fit the model."""


class WeightError(MoebiusError):
    """An external weight file that cannot be used."""


class MissingWeightError(WeightError):
    """A weight file that is not in the weights directory."""


class WeightChecksumError(WeightError):
    """A weight file whose bytes contradict its known checksum."""


class TrainError(MoebiusError, RuntimeError):
    """A training, distillation or checkpoint request that cannot be carried out as asked."""


class SamplerError(MoebiusError, ValueError):
    """Sampler inputs with the wrong shape, range or settings for this model."""


class EvalError(MoebiusError, RuntimeError):
    """An evaluation request that cannot be carried out as asked."""


class ReportError(MoebiusError, ValueError):
    """Records, reference tables or table CSVs that cannot be turned into a faithful report."""
