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
    from moebius.models.presets import PRESETS
    from moebius.models.registry import SPECS
    from moebius.weights import WEIGHTS

    for reg in (PRESETS, SPECS, WEIGHTS):
        assert isinstance(reg, Registry)
        with pytest.raises(UnknownNameError, match="did you mean"):
            reg.get(reg.names()[0] + "x")
