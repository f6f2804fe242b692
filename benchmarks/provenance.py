"""Where a benchmark row comes from, and how a benchmark writes its rows to a results CSV.

Shared by the ``bench_*.py`` scripts (run as ``python benchmarks/bench_<name>.py``, so this folder is
on ``sys.path``). Every row names the commit it measured; ``+dirty`` marks uncommitted edits to the
package or to the watched files, so a row never passes off an edited tree as a commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd

from moebius.atomic import atomic_open

REPO = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    """``git -C <repo> ARGS``'s stdout, stripped; CalledProcessError on failure."""
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def commit_label(*watched: str) -> str:
    """Short HEAD hash, ``+dirty`` when ``moebius/`` or ``watched`` (paths from the repository root) have
    uncommitted edits; ``unknown`` outside a git checkout."""
    try:
        dirty = git("status", "--porcelain", "--", "moebius", *watched)
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_csv(df: pd.DataFrame, out: Path, text_columns: tuple[str, ...], append: bool = True) -> None:
    """Write ``df`` to ``out`` atomically, after the rows already there when ``append`` (and ``out`` exists).

    ``text_columns`` are read back as text: a short hash such as 65e4804 would otherwise read as a float.
    """
    if append and out.exists():
        old = pd.read_csv(out, dtype={c: str for c in text_columns}, keep_default_na=False)
        df = pd.concat([old, df], ignore_index=True)
    with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)
