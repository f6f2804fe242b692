"""Shared fixtures: the repository root, the two scale configs, and runners for the CLI (in this process,
and the installed command in a subprocess)."""

from __future__ import annotations

import logging
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


@pytest.fixture
def one_thread():
    """One intra-op CPU thread for the test, restored after it: tiny models' many small ops run ~10x
    slower when two threads contend, and a pinned result must not move with the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def moebius_main(monkeypatch, capsys):
    """Run ``moebius ARGS`` in this process through ``moebius.cli.main`` (parsing, the package call, the
    one-line error handling); returns (exit status, stdout, stderr) of that command alone. A traceback
    propagates and fails the test."""
    from moebius.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        logger = logging.getLogger("moebius")
        before = list(logger.handlers)
        capsys.readouterr()  # what earlier calls printed is theirs
        monkeypatch.setattr(sys, "argv", ["moebius", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            for handler in logger.handlers[:]:
                if handler not in before:  # main() binds a handler to this test's captured stderr
                    logger.removeHandler(handler)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def moebius_cli(moebius_main):
    """``moebius_main`` for the tests that read stderr only: (exit status, stderr)."""

    def run(*args: str) -> tuple[int, str]:
        code, _, err = moebius_main(*args)
        return code, err

    return run


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
