"""Collect the hostile inputs and faults the suite tries into ``docs/reliability.md``.

A test that feeds the harness a hostile input or a fault carries one marker,

    @pytest.mark.hostile("a zip whose members chain symlinks out of --dest", "UnsafeArchiveError; nothing written outside")

(string literals only: the first says what is tried, the second what happens). This module reads those
markers from the test files' syntax trees, without importing them, and renders one line per test.
``tests/test_reliability_doc.py`` fails when the committed page differs from the rendering, so the page
cannot drift from the suite. Regenerate it with ``python tests/reliability.py --write``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"

HEADER = """# Reliability: hostile inputs and faults the test suite tries

Generated from the `@pytest.mark.hostile(input, outcome)` markers of `tests/` by
`python tests/reliability.py --write`; `tests/test_reliability_doc.py` fails when this page and the
markers differ. Each line: what is tried, what the harness does, and the test that checks it. "One line"
means the CLI prints a single `moebius: error: …` line and exits with status 2.
"""


def _hostile_args(decorator: ast.expr) -> tuple[str, str] | None:
    """(input, outcome) of a ``pytest.mark.hostile("…", "…")`` decorator, else None."""
    if not isinstance(decorator, ast.Call):
        return None
    f = decorator.func
    if not (isinstance(f, ast.Attribute) and f.attr == "hostile"):
        return None
    args = decorator.args
    if len(args) != 2 or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
        raise ValueError(f"line {decorator.lineno}: hostile() takes two string literals (input, outcome)")
    return args[0].value, args[1].value


def collect(root: Path = ROOT) -> list[tuple[str, str, str, str]]:
    """(area, input, outcome, test id) for every marked test function, in file then line order."""
    rows = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root).as_posix()
        area = path.parent.name if path.parent.name != "tests" else "harness"
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for dec in node.decorator_list:
                    found = _hostile_args(dec)
                    if found:
                        rows.append((area, found[0], found[1], f"{rel}::{node.name}", node.lineno))
    rows.sort(key=lambda r: (r[0], r[3].split("::")[0], r[4]))
    return [r[:4] for r in rows]


def render(rows: list[tuple[str, str, str, str]]) -> str:
    out = [HEADER]
    area = None
    for a, what, outcome, test in rows:
        if a != area:
            out.append(f"\n## {a}\n\n| hostile input or fault | outcome | test |\n| --- | --- | --- |")
            area = a
        cell = lambda s: s.replace("|", "\\|")
        out.append(f"| {cell(what)} | {cell(outcome)} | `{test}` |")
    out.append(f"\n{len(rows)} hostile inputs and faults in all.\n")
    return "\n".join(out)


if __name__ == "__main__":
    text = render(collect())
    if "--write" in sys.argv:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")
    else:
        sys.stdout.write(text)
