"""Deterministic choice of which images of a split a benchmark or sample uses.

Rules:
* ``all``    every id, in the given order (``n`` must be None or equal to the count);
* ``first``  the first ``n`` ids in the given order (MI-GAN / CoModGAN's FFHQ "first 10K");
* ``last``   the last ``n`` ids (FFHQ's official validation = images 60000-69999);
* ``seeded`` the ``n`` ids whose seed ``moebius.seeding.derive("selection", seed, id)`` (the
  sha256 of ``f"{seed}:{id}"``) is smallest, returned in the given order.

``seeded`` hashes ids instead of drawing from a NumPy generator so that the sample depends only on
the seed and the set of ids: not on list order, not on the NumPy version's sampling algorithm,
and growing ``n`` keeps every previously chosen id (samples are nested).
"""

from __future__ import annotations

from collections.abc import Sequence

from moebius.errors import DataError
from moebius.registry import Registry
from moebius.seeding import derive

RULES: Registry[str] = Registry("selection rule", {
    "all": "every id, in the given order",
    "first": "the first n ids",
    "last": "the last n ids",
    "seeded": "the n ids with the smallest seeded hash, in the given order",
})


def select_ids(all_ids: Sequence[str], n: int | None, seed: int, rule: str) -> list[str]:
    """The ids that ``rule`` picks from ``all_ids`` (``n`` None means all of them)."""
    RULES.get(rule)
    ids = list(all_ids)
    if len(set(ids)) != len(ids):
        raise DataError("cannot select from a list with duplicate ids")
    if n is None:
        return ids
    if not isinstance(n, int) or n < 0:
        raise DataError(f"number of images must be a non-negative integer, got {n!r}")
    if n > len(ids):
        raise DataError(f"asked for {n} images but the split has only {len(ids)}")
    if rule == "all":
        if n != len(ids):
            raise DataError(f"rule 'all' takes every one of the {len(ids)} images, not {n}")
        return ids
    if rule == "first":
        return ids[:n]
    if rule == "last":
        return ids[len(ids) - n :]
    chosen = set(sorted(ids, key=lambda i: derive("selection", seed, i))[:n])
    return [i for i in ids if i in chosen]
