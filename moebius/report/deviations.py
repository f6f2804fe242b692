"""The report's "Paper vs code" section, collected from the code so that it cannot drift.

Two lists: every switch of ``moebius.switches`` (what the paper says, what the official code does, what
this run used — read from the records' ``settings``), and every ``# DEVIATION (<source>): <text>`` marker
in the package's source, with its continuation comment lines, its file and line. ``paper_vs_code``
returns the section as data; the Markdown page (``paper_vs_code_lines``) and the HTML page
(``moebius.report.html``) both render that one object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import moebius
from moebius.switches import SWITCHES

MARKER = re.compile(r"#\s*DEVIATION\s*(\(([^)]*)\))?:?\s*(.*)")


@dataclass(frozen=True)
class Marker:
    """One ``# DEVIATION`` comment: where it is, what it departs from, what it says."""

    path: str  # relative to the package's parent folder, e.g. moebius/train/balance.py
    line: int
    source: str  # the parenthesised part: "paper §3.3", "official pipeline", ...
    text: str


def collect_markers(package_dir: Path | None = None) -> list[Marker]:
    """Every marker under ``package_dir`` (default: the installed ``moebius`` package), in path order."""
    root = Path(package_dir) if package_dir is not None else Path(moebius.__file__).resolve().parent
    markers = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = MARKER.search(line)
            if not m:
                continue
            text = [m.group(3).strip()]
            for nxt in lines[i + 1 :]:  # continuation: comment lines that are not a new marker
                s = nxt.strip()
                if not s.startswith("#") or MARKER.search(s):
                    break
                text.append(s.lstrip("#").strip())
            rel = path.relative_to(root.parent).as_posix()
            markers.append(Marker(rel, i + 1, (m.group(2) or "").strip(), " ".join(t for t in text if t)))
    return markers


@dataclass(frozen=True)
class SwitchRow:
    """One switch of ``moebius.switches`` with the values this run's records used."""

    name: str
    key: str | None
    paper: str
    official: str
    used: tuple[str, ...]  # sorted distinct values in the records; empty when none recorded it


@dataclass(frozen=True)
class PaperVsCode:
    """The whole section's content; ``paper_vs_code_lines`` (Markdown) and ``report.html`` render it."""

    switches: tuple[SwitchRow, ...]
    markers: tuple[Marker, ...]


INTRO = ("Where the paper and the official code disagree, both are implemented behind a config switch; "
         "every record names the value it used. Below the switches, every `# DEVIATION` marker in the "
         "code (collected from the source when this page was built).")


def paper_vs_code(records: list[dict[str, Any]], package_dir: Path | None = None) -> PaperVsCode:
    """The switches with this run's values (from the records' ``settings``) and every marker."""
    rows = []
    for s in SWITCHES:
        used = sorted({str((r.get("settings") or {}).get(s.name)) for r in records
                       if s.name in (r.get("settings") or {})})
        rows.append(SwitchRow(s.name, s.key, s.paper, s.official, tuple(used)))
    return PaperVsCode(tuple(rows), tuple(collect_markers(package_dir)))


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def paper_vs_code_lines(records: list[dict[str, Any]], package_dir: Path | None = None) -> list[str]:
    """Markdown lines of the section: the switches with this run's values, then every marker."""
    section = paper_vs_code(records, package_dir)
    lines = ["## Paper vs code", "", INTRO, "",
             "| switch | config key | paper | official code | this run |", "| --- | --- | --- | --- | --- |"]
    for s in section.switches:
        lines.append(f"| {s.name} | {'`' + s.key + '`' if s.key else '—'} | {_cell(s.paper)} | {_cell(s.official)} "
                     f"| {', '.join(f'`{u}`' for u in s.used) or 'not recorded'} |")
    lines += ["", f"### Every DEVIATION marker ({len(section.markers)})", "",
              "| where | departs from | what, why, cost |", "| --- | --- | --- |"]
    lines += [f"| `{m.path}:{m.line}` | {_cell(m.source) or '—'} | {_cell(m.text)} |" for m in section.markers]
    return lines + [""]
