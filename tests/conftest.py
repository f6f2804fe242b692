"""Shared fixtures: the repository root, the two scale configs, and a runner for the installed CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def smoke_cfg():
    """``config/smoke.yaml`` as loaded (a frozen Config: safe to share)."""
    from moebius.config import load_config

    return load_config(ROOT / "config" / "smoke.yaml")


@pytest.fixture(scope="session")
def full_cfg():
    """``config/full.yaml`` as loaded."""
    from moebius.config import load_config

    return load_config(ROOT / "config" / "full.yaml")


def _venv_bin(name: str) -> str:
    """An executable of the interpreter running the tests (the project's .venv in practice)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@pytest.fixture
def run_cli():
    """Run `moebius ARGS` in a subprocess from the repo root; returns the CompletedProcess."""

    def _run(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [_venv_bin("moebius"), *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=600
        )

    return _run
