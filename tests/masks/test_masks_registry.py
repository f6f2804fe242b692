"""Protocol registry: names, versions, native sizes, typo hints, and per-protocol invariants."""

from __future__ import annotations

import numpy as np
import pytest

from moebius.errors import UnknownNameError
from moebius.masks import MaskError, generate_mask, get_protocol, list_protocols

EXPECTED = {
    "mat_large_512": 512, "mat_small_512": 512, "mat_large_256": 256, "mat_small_256": 256,
    "migan_256": 256, "migan_512": 512,
    "lama_thick_256": 256, "lama_medium_256": 256, "lama_thin_256": 256,
    "lama_thick_512": 512, "lama_medium_512": 512, "lama_thin_512": 512,
    "places2_test": 512,
}


def test_all_protocols_registered_with_native_size_and_version_1() -> None:
    assert set(list_protocols()) == set(EXPECTED)
    for name, size in EXPECTED.items():
        proto = get_protocol(name)
        assert (proto.name, proto.size, proto.version) == (name, size, 1)
        assert get_protocol(name, 1) is proto


@pytest.mark.parametrize(("name", "match"), [
    ("mat_larg_512", "did you mean 'mat_large_512'"),  # a typo: the nearest name
    ("zzz", "unknown mask protocol 'zzz'; known: lama_medium_256, "),  # nothing near: the list
])
def test_unknown_protocol_names_the_nearest_or_the_known(name: str, match: str) -> None:
    with pytest.raises(UnknownNameError, match=match):
        get_protocol(name)


def test_unknown_version_is_an_error() -> None:
    with pytest.raises(MaskError, match="no version 2"):
        get_protocol("migan_256", 2)
    with pytest.raises(MaskError, match="no version 2"):
        generate_mask("migan_256", "a", 0, version=2)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_masks_are_native_bool_and_respect_protocol_bounds(name: str) -> None:
    ratios = []
    for i in range(12):
        hole = generate_mask(name, f"inv-{i}", seed=5)
        assert hole.dtype == bool and hole.shape == (EXPECTED[name],) * 2
        ratios.append(hole.mean())
    ratios = np.array(ratios)
    if name.startswith(("mat", "migan")):
        assert np.all((ratios > 0) & (ratios < 1))  # RandomMask redraws empty / full masks
    elif name.startswith("lama"):
        assert np.all((ratios > 0) & (ratios <= 0.5))  # the pipeline drops candidates over 50 %
    else:
        assert np.all((ratios >= 0.4) & (ratios <= 0.5))  # places2_test window
