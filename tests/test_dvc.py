"""DVC round trip in a temporary clone: run -> dvc push -> delete data and cache -> dvc pull -> same files."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the project's .venv/bin when run through scripts/test.sh


def venv_bin(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def sh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(venv_bin('dvc')).parent}:{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_dvc_push_pull_round_trip(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    for rel in listed:
        src = ROOT / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    (clone / ".venv").symlink_to(Path(venv_bin("dvc")).parent.parent)
    sh("git", "init", "-q", cwd=clone)
    sh("git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", "add", "-A", cwd=clone)
    sh("git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", "commit", "-qm", "snapshot", cwd=clone)

    sh("dvc", "repro", "data", cwd=clone)
    before = tree_hashes(clone / "data")
    assert any(k.endswith("manifest.csv") for k in before) and len(before) > 20

    sh("dvc", "push", cwd=clone)
    shutil.rmtree(clone / "data")
    shutil.rmtree(clone / ".dvc" / "cache")
    sh("dvc", "pull", "data", cwd=clone)
    assert tree_hashes(clone / "data") == before
