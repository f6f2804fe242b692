"""select_ids(): the deterministic rules that pick a split's or benchmark's images."""

from __future__ import annotations

import random

import pytest

from moebius.data.selection import select_ids
from moebius.errors import DataError, UnknownNameError

IDS = [f"img-{i:04d}" for i in range(200)]


def test_first_last_all():
    assert select_ids(IDS, 3, 0, "first") == IDS[:3]
    assert select_ids(IDS, 3, 0, "last") == IDS[-3:]
    assert select_ids(IDS, None, 0, "all") == IDS
    assert select_ids(IDS, None, 0, "first") == IDS
    with pytest.raises(DataError):
        select_ids(IDS, 5, 0, "all")


def test_seeded_is_deterministic_sized_and_in_input_order():
    a = select_ids(IDS, 20, 7, "seeded")
    assert a == select_ids(IDS, 20, 7, "seeded")
    assert len(a) == len(set(a)) == 20 and set(a) <= set(IDS)
    assert a == sorted(a, key=IDS.index)
    assert a != IDS[:20]  # not just the head of the list


def test_seeded_depends_on_seed_not_on_list_order():
    shuffled = IDS[:]
    random.Random(3).shuffle(shuffled)
    assert set(select_ids(shuffled, 30, 1, "seeded")) == set(select_ids(IDS, 30, 1, "seeded"))
    assert set(select_ids(IDS, 30, 1, "seeded")) != set(select_ids(IDS, 30, 2, "seeded"))


def test_seeded_samples_are_nested():
    small, large = select_ids(IDS, 10, 5, "seeded"), select_ids(IDS, 50, 5, "seeded")
    assert set(small) < set(large)


def test_bad_requests():
    with pytest.raises(DataError, match="only 200"):
        select_ids(IDS, 201, 0, "first")
    with pytest.raises(DataError):
        select_ids(IDS, -1, 0, "first")
    with pytest.raises(DataError, match="duplicate"):
        select_ids(["a", "a"], 1, 0, "first")
    with pytest.raises(UnknownNameError, match="did you mean 'seeded'"):
        select_ids(IDS, 1, 0, "seded")
