"""Progress bars that read well both in a terminal and in a Snakemake log file.

In a terminal, ``progress`` is a plain ``tqdm`` bar on stderr. When stderr is not a terminal (every
Snakemake job: ``> {log} 2>&1``), a redrawn bar would fill the log with carriage-return frames, so
the same call prints one complete line each time another ``LINE_STEP_PERCENT`` % is done (and a last
line when the work ends), e.g. ``masks mat_large_512 v1: 40% (80/200 mask) 3.1 s, ~4.6 s left``.
Work of unknown size prints a line every ``LINE_EVERY_S`` seconds instead.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm

LINE_STEP_PERCENT = 10  # one log line per this much of the work
LINE_EVERY_S = 30.0  # unknown total: one log line per this many seconds
TTY_MININTERVAL_S = 0.5  # terminal: redraw at most twice a second


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def _amount(n: float, unit: str, unit_scale: bool) -> str:
    if unit_scale:
        return tqdm.format_sizeof(n, suffix=unit, divisor=1024 if unit == "B" else 1000)
    return f"{int(n)}" if float(n).is_integer() else f"{n:.1f}"


class LineProgress:
    """The part of tqdm's interface this package uses (update, set_postfix, close, iteration, ``with``),
    printing whole lines: the first at ``LINE_STEP_PERCENT`` %, then at every further multiple."""

    def __init__(self, iterable: Iterable | None = None, total: float | None = None, desc: str = "",
                 unit: str = "it", unit_scale: bool = False, initial: float = 0, disable: bool = False,
                 file: TextIO | None = None) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc = iterable, total, desc
        self.unit, self.unit_scale, self.disable = unit, unit_scale, disable
        self.file = file if file is not None else sys.stderr
        self.n = initial
        self.postfix = ""
        self._start = time.monotonic()
        self._initial = initial
        self._last_line_at = self._start
        self._last_line_n: float | None = None
        self._next_mark = self._mark_after(initial)
        self._closed = False

    def _mark_after(self, n: float) -> int:
        """The next whole multiple of LINE_STEP_PERCENT strictly above the percentage of ``n``."""
        if not self.total:
            return 0
        return (math.floor(100 * n / self.total / LINE_STEP_PERCENT) + 1) * LINE_STEP_PERCENT

    def _line(self) -> str:
        elapsed = time.monotonic() - self._start
        done = f"{_amount(self.n, self.unit, self.unit_scale)}"
        if self.total:
            pct = 100 * self.n / self.total
            total = _amount(self.total, self.unit, self.unit_scale)
            text = f"{self.desc}: {pct:3.0f}% ({done}/{total}{'' if self.unit_scale else ' ' + self.unit}) {elapsed:.1f} s"
            rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
            if 0 < self.n < self.total and rate > 0:
                text += f", ~{(self.total - self.n) / rate:.1f} s left"
        else:
            text = f"{self.desc}: {done}{'' if self.unit_scale else ' ' + self.unit} {elapsed:.1f} s"
        return text + (f" [{self.postfix}]" if self.postfix else "")

    def _emit(self) -> None:
        self.file.write(self._line() + "\n")
        self.file.flush()
        self._last_line_at = time.monotonic()
        self._last_line_n = self.n

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.disable or self._closed:
            return
        if self.total:
            if 100 * self.n / self.total >= self._next_mark:
                self._emit()
                self._next_mark = self._mark_after(self.n)
        elif time.monotonic() - self._last_line_at >= LINE_EVERY_S:
            self._emit()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.n != self._last_line_n:  # the final state, never a duplicate line
            self._emit()

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("LineProgress was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable | None = None, total: float | None = None, desc: str = "", *,
             unit: str = "it", unit_scale: bool = False, initial: float = 0, disable: bool = False,
             file: TextIO | None = None) -> Any:
    """A progress bar over ``iterable`` (or for manual ``update(n)`` calls when it is None).

    A ``tqdm`` bar when ``file`` (default stderr) is a terminal, else a ``LineProgress``.
    """
    stream = file if file is not None else sys.stderr
    if _is_tty(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial,
                    disable=disable, file=stream, mininterval=TTY_MININTERVAL_S, dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial,
                        disable=disable, file=stream)
