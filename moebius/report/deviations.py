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
class Effect:
    """What flipping one switch from ``base`` to ``other`` did to one metric, over the records that
    differ in that switch alone: mean of (value under ``other`` − value under ``base``)."""

    metric: str
    base: str
    other: str
    mean_delta: float
    n_pairs: int
    scales: tuple[str, ...]  # the records' ``scale`` (smoke numbers are stand-ins, said with them)

    def text(self) -> str:
        return (f"{self.metric}: {self.other} − {self.base} = {self.mean_delta:+.4g} "
                f"(mean of {self.n_pairs} pairs, {'/'.join(self.scales) or 'unknown'} scale)")


@dataclass(frozen=True)
class SwitchRow:
    """One switch of ``moebius.switches`` with the values this run's records used."""

    name: str
    key: str | None
    paper: str
    official: str
    used: tuple[str, ...]  # sorted distinct values in the records; empty when none recorded it
    effects: tuple[Effect, ...] = ()  # measured where the records hold both sides; empty otherwise


# Settings that name a run rather than describe it: two records that differ only here (and in the
# switch) are the same measurement under the two values of the switch.
_RUN_LABELS = frozenset({"variant"})


def measured_effects(records: list[dict[str, Any]], switch: str) -> tuple[Effect, ...]:
    """Pair records that agree on model, benchmark, metric and every other setting but ``switch``.

    A switch whose two values were both run (the smoke DAG scores the sampler's two starts, for one) gets
    the mean difference per metric; a switch with one value in the records gets nothing — flipping it
    was not measured, and no number is made up.
    """
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        settings = r.get("settings") or {}
        if switch not in settings or not isinstance(r.get("value"), (int, float)):
            continue
        if str(r.get("metric", "")).endswith("_bin"):  # per-hole-ratio bins: the headline metrics say it
            continue
        rest = tuple(sorted((k, repr(v)) for k, v in settings.items() if k != switch and k not in _RUN_LABELS))
        key = (r.get("model"), r.get("benchmark"), r.get("metric"), r.get("scale"), rest)
        groups.setdefault(key, {}).setdefault(str(settings[switch]), []).append(r)
    deltas: dict[tuple[str, str, str], list[float]] = {}
    scales: dict[tuple[str, str, str], set[str]] = {}
    for (_, _, metric, scale, _), by_value in groups.items():
        values = sorted(by_value)
        for i, base in enumerate(values):
            for other in values[i + 1 :]:
                if len(by_value[base]) == len(by_value[other]) == 1:  # one measurement each side: a pair
                    k = (str(metric), base, other)
                    deltas.setdefault(k, []).append(by_value[other][0]["value"] - by_value[base][0]["value"])
                    scales.setdefault(k, set()).add(str(scale))
    return tuple(Effect(metric, base, other, sum(d) / len(d), len(d), tuple(sorted(scales[(metric, base, other)])))
                 for (metric, base, other), d in sorted(deltas.items()))


@dataclass(frozen=True)
class PaperVsCode:
    """The whole section's content; ``paper_vs_code_lines`` (Markdown) and ``report.html`` render it."""

    switches: tuple[SwitchRow, ...]
    markers: tuple[Marker, ...]


INTRO = ("Where the paper and the official code disagree, both are implemented behind a config switch; "
         "every record names the value it used. Where this run scored both values of a switch on the same "
         "model, benchmark and metric, the mean difference is shown (at smoke scale a measurement of tiny "
         "stand-in models, not a prediction for the paper's). Below the switches, every `# DEVIATION` marker "
         "in the code (collected from the source when this page was built).")


def paper_vs_code(records: list[dict[str, Any]], package_dir: Path | None = None) -> PaperVsCode:
    """The switches with this run's values (from the records' ``settings``) and every marker."""
    rows = []
    for s in SWITCHES:
        used = sorted({str((r.get("settings") or {}).get(s.name)) for r in records
                       if s.name in (r.get("settings") or {})})
        rows.append(SwitchRow(s.name, s.key, s.paper, s.official, tuple(used), measured_effects(records, s.name)))
    return PaperVsCode(tuple(rows), tuple(collect_markers(package_dir)))


def effect_text(row: SwitchRow) -> str:
    """The effect cell: one entry per metric, or why there is none."""
    if row.effects:
        return "; ".join(e.text() for e in row.effects)
    return "not measured (one value in this run)" if row.used else "—"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def paper_vs_code_lines(records: list[dict[str, Any]], package_dir: Path | None = None) -> list[str]:
    """Markdown lines of the section: the switches with this run's values, then every marker."""
    section = paper_vs_code(records, package_dir)
    lines = ["## Paper vs code", "", INTRO, "",
             "| switch | config key | paper | official code | this run | measured effect of flipping |",
             "| --- | --- | --- | --- | --- | --- |"]
    for s in section.switches:
        lines.append(f"| {s.name} | {'`' + s.key + '`' if s.key else '—'} | {_cell(s.paper)} | {_cell(s.official)} "
                     f"| {', '.join(f'`{u}`' for u in s.used) or 'not recorded'} | {effect_text(s)} |")
    lines += ["", f"### Every DEVIATION marker ({len(section.markers)})", "",
              "| where | departs from | what, why, cost |", "| --- | --- | --- |"]
    lines += [f"| `{m.path}:{m.line}` | {_cell(m.source) or '—'} | {_cell(m.text)} |" for m in section.markers]
    return lines + [""]
