"""Fixtures for the model tests: the official state-dict manifests (copied from shared/reference).

Helpers are fixtures rather than importable functions so the tests work under any pytest import mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

MANIFEST_DIR = Path(__file__).parent / "manifests"

Row = tuple[str, tuple[int, ...], str]


def _read_manifest(name: str) -> list[Row]:
    """(key, shape, dtype) rows of ``manifests/<name>_state_dict.tsv``, in file order."""
    rows = []
    lines = (MANIFEST_DIR / f"{name}_state_dict.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype", "numel"]
    for line in lines[1:]:
        key, shape, dtype, numel = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        assert int(numel) == (torch.Size(dims).numel() if dims else 1)
        rows.append((key, dims, dtype))
    return rows


def _zero_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Zero tensors with the manifest's keys, shapes and dtypes (int64 for BN counters)."""
    return {key: torch.zeros(shape, dtype=getattr(torch, dtype)) for key, shape, dtype in _read_manifest(name)}


@pytest.fixture(scope="session")
def manifest_dir() -> Path:
    return MANIFEST_DIR


@pytest.fixture(scope="session")
def read_manifest() -> Callable[[str], list[Row]]:
    return _read_manifest


@pytest.fixture(scope="session")
def zero_state_dict() -> Callable[[str], dict[str, torch.Tensor]]:
    return _zero_state_dict


@pytest.fixture(autouse=True)
def _single_thread(one_thread) -> None:
    """Every model test on one intra-op thread (tests/conftest.py ``one_thread``); the pinned forwards
    depend on it: a baseline's own result moves with the thread count."""
