"""The one registry type: register, get with a hint, names."""

from __future__ import annotations

import pytest

from moebius.errors import MoebiusError, UnknownNameError
from moebius.registry import Registry


def test_get_names_and_the_hint():
    reg = Registry("colour", {"red": 1, "green": 2})
    reg.register("blue", 3)
    assert reg.get("green") == 2 and reg["blue"] == 3 and reg.names() == ("red", "green", "blue")
    assert "red" in reg and len(reg) == 3 and dict(reg.items()) == {"red": 1, "green": 2, "blue": 3}
    with pytest.raises(UnknownNameError, match=r"unknown colour 'gren' \(did you mean 'green'\?\); known: blue, green, red") as err:
        reg.get("gren")
    assert isinstance(err.value, MoebiusError) and isinstance(err.value, KeyError)  # one line at the CLI
    with pytest.raises(UnknownNameError, match="known: blue, green, red$"):
        reg["zzz"]  # nothing close: no hint, still the listing


def test_a_name_registered_twice_is_refused():
    reg = Registry("colour", {"red": 1})
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("red", 2)
    assert reg.get("red") == 1


def test_the_registries_are_this_type():
    from moebius.data.preprocess import PREPROCESSORS
    from moebius.data.registry import DATASETS, FFHQ_VALIDATION
    from moebius.data.selection import RULES
    from moebius.data.smoke import SMOKE_DATASETS
    from moebius.eval.baselines import BASELINES
    from moebius.masks.registry import PROTOCOLS
    from moebius.models.presets import PRESETS
    from moebius.models.registry import SPECS
    from moebius.report.names import BUILD_NAMES, EXPERIMENTS, MODEL_NAMES
    from moebius.report.schema import TABLES
    from moebius.weights import WEIGHTS

    registries = (PRESETS, SPECS, WEIGHTS, DATASETS, FFHQ_VALIDATION, SMOKE_DATASETS, PREPROCESSORS, RULES,
                  PROTOCOLS, BASELINES, EXPERIMENTS, MODEL_NAMES, BUILD_NAMES, TABLES)
    for reg in registries:
        assert isinstance(reg, Registry)
        with pytest.raises(UnknownNameError, match="did you mean"):
            reg.get(reg.names()[0] + "x")


def test_the_hint_is_written_once(repo_root):
    """Every "did you mean" comes from moebius/errors.py (through Registry / UnknownNameError.of), and no
    import of the package's own modules is guarded: a missing module is a bug, not a fallback."""
    hint_writers, guarded = [], []
    for path in sorted((repo_root / "moebius").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(repo_root).as_posix()
        if "get_close_matches" in text and rel != "moebius/errors.py":
            hint_writers.append(rel)
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("except ImportError") or line.strip().startswith("except ModuleNotFoundError"):
                tried = "\n".join(lines[max(0, i - 4):i])
                if "from moebius" in tried or "import moebius" in tried:
                    guarded.append(f"{rel}:{i + 1}")
    assert hint_writers == [] and guarded == []


def test_one_vocabulary_of_model_names():
    """Model keys (records, CLI, workflow) map to build names (build_model) in one place only."""
    from moebius.eval.baselines import BASELINES
    from moebius.eval.profile import PROFILE_MODELS
    from moebius.models.registry import SPECS
    from moebius.models.variants import EXPERIMENTS as TABLE2
    from moebius.report.names import BUILD_NAMES, MODEL_NAMES, TABLE2_KEYS, build_name, key_of_build
    from moebius.train.official import weight_name

    assert set(BUILD_NAMES.values()) == set(SPECS.names())  # every architecture has exactly one key
    assert TABLE2_KEYS == tuple(e.name for e in TABLE2.values())
    assert (build_name("moebius"), build_name("pixelhacker"), key_of_build("teacher")) == ("student", "teacher", "pixelhacker")
    assert PROFILE_MODELS is BUILD_NAMES
    assert set(BASELINES.names()) <= set(MODEL_NAMES.names())  # every method has a display name
    # the official files keep their names (moebius.weights keys): moebius_* is the student
    assert (weight_name("student", "ft_ffhq"), weight_name("teacher", "pretrained")) == (
        "moebius_ft_ffhq", "pixelhacker_pretrained")
