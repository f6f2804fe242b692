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


def _seed0_forward(name: str, preset: str) -> tuple[torch.nn.Module, object]:
    """The seed-0 ``name`` at ``preset`` and its output on test_forward_equivalence's fixed input."""
    from moebius.models.lcg import cfg_ids, lcg_ids
    from moebius.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(name, preset).eval()
    side = model.latent_size
    g = torch.Generator().manual_seed(7)
    batch = 2 if preset == "smoke" else 1  # smoke: the CFG batch [uncond, cond]; paper: one conditional row
    x = torch.randn(batch, 9, side, side, generator=g)
    t = torch.tensor([10, 900][:batch])
    ids = cfg_ids(1) if batch == 2 else lcg_ids(1, True)
    with torch.no_grad():
        out = model(x, t, ids)
    return model, out


class PaperForwards:
    """Paper-size seed-0 forwards, built once for the slow tests that read them: the pinned values
    (test_forward_equivalence) and the shapes (test_model_forward_paper); a paper teacher build plus
    forward takes ~20 s on one thread. ``take`` hands an entry over and forgets it, so that the
    3.4 GB teacher is freed with the module that took it last."""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[torch.nn.Module, object]] = {}

    def get(self, name: str) -> tuple[torch.nn.Module, object]:
        if name not in self._runs:
            self._runs[name] = _seed0_forward(name, "paper")
        return self._runs[name]

    def take(self, name: str) -> tuple[torch.nn.Module, object]:
        run = self.get(name)
        del self._runs[name]
        return run


@pytest.fixture(scope="session")
def seed0_forward() -> Callable[[str, str], tuple[torch.nn.Module, object]]:
    return _seed0_forward


@pytest.fixture(scope="session")
def paper_forwards() -> PaperForwards:
    return PaperForwards()
