"""docs/reliability.md is exactly what the suite's hostile markers say (so it cannot drift)."""

from __future__ import annotations

import pytest

from reliability import DOC, collect, render


def test_reliability_page_matches_the_markers():
    rows = collect()
    assert rows, "no test carries @pytest.mark.hostile"
    assert DOC.exists(), "docs/reliability.md is missing: python tests/reliability.py --write"
    assert DOC.read_text(encoding="utf-8") == render(rows), "docs/reliability.md is stale: python tests/reliability.py --write"


def test_marker_needs_two_string_literals(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest\n@pytest.mark.hostile('only one')\ndef test_a():\n    pass\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="two string literals"):
        collect(tmp_path)
