"""README's DVC story with two clones: A runs the `data` stage and pushes; B, a `git clone` of A, pulls.

The default remote (`.dvc/config`) sits beside the clone (`../moebius-dvc-storage`), so sibling clones
share it; it verifies what it delivers (`verify = true`), so a corrupt object fails the pull.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the project's .venv/bin when run through scripts/test.sh
STORAGE = "moebius-dvc-storage"  # .dvc/config: url = ../../moebius-dvc-storage (relative to .dvc/)
GIT_ID = ["-c", "user.email=ci@example.org", "-c", "user.name=ci"]


def venv_bin(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # One core for the Snakemake phase: the test machine is shared.
    env = {**os.environ, "PATH": f"{Path(venv_bin('dvc')).parent}:{os.environ['PATH']}", "MOEBIUS_CORES": "1"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


def sh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = run(*args, cwd=cwd)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def objects(cache: Path) -> dict[str, Path]:
    """DVC objects under a cache or remote folder, by object id (``<2 hex>/<rest>``)."""
    return {f"{p.parent.name}{p.name}": p for p in (cache / "files").rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def clone_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clone A: this checkout (tracked and new files) as a git repo that ran `dvc repro data` and pushed."""
    a = tmp_path_factory.mktemp("dvc") / "a"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    for rel in listed:
        src = ROOT / rel
        if src.is_file():
            (a / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, a / rel)
    (a / ".venv").symlink_to(Path(venv_bin("dvc")).parent.parent)
    sh("git", "init", "-q", cwd=a)
    sh("git", *GIT_ID, "add", "-A", cwd=a)
    sh("git", *GIT_ID, "commit", "-qm", "snapshot", cwd=a)

    sh("dvc", "repro", "data", cwd=a)  # the cheapest phase of dvc.yaml, through scripts/phase.sh
    sh("git", *GIT_ID, "commit", "-qam", "dvc.lock of the data stage", cwd=a)
    sh("dvc", "push", cwd=a)
    return a


def test_pull_on_a_fresh_clone_gets_the_pushed_files(clone_a: Path) -> None:
    storage = clone_a.parent / STORAGE
    assert objects(storage), "the default remote is not beside the clone"
    assert not (clone_a / "dvc-storage").exists()
    before = tree_hashes(clone_a / "data")
    assert any(k.endswith("manifest.csv") for k in before) and len(before) > 20

    b = clone_a.parent / "b"
    sh("git", "clone", "-q", str(clone_a), str(b), cwd=clone_a.parent)
    assert not (b / "data").exists()
    sh("dvc", "pull", "data", cwd=b)  # the stage's outputs; after a full `dvc repro`, plain `dvc pull`
    assert tree_hashes(b / "data") == before


@pytest.mark.hostile(
    "one byte flipped in an object of the DVC remote, then `dvc pull` on a fresh clone",
    "the pull fails (non-zero exit); the corrupt object reaches neither the cache nor data/",
)
def test_corrupt_remote_object_fails_the_pull(clone_a: Path) -> None:
    stored = objects(clone_a.parent / STORAGE)
    oid, victim = next((k, p) for k, p in sorted(stored.items()) if not k.endswith(".dir"))
    original = victim.read_bytes()
    victim.chmod(0o644)  # DVC stores objects read-only
    victim.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
    try:
        c = clone_a.parent / "c"
        sh("git", "clone", "-q", str(clone_a), str(c), cwd=clone_a.parent)
        pulled = run("dvc", "pull", "data", cwd=c)
        fetched = objects(c / ".dvc" / "cache")
    finally:
        victim.write_bytes(original)
    assert pulled.returncode != 0, pulled.stdout + pulled.stderr
    assert oid not in fetched
    assert set(fetched) == set(stored) - {oid}  # the remote was reached: every sound object came
    corrupt = hashlib.sha256(bytes([original[0] ^ 0xFF]) + original[1:]).hexdigest()
    delivered = tree_hashes(c / "data").values() if (c / "data").exists() else []
    assert corrupt not in delivered


@pytest.mark.hostile(
    "an atomic-write temporary and a .part left in data/, __pycache__ inside a stage's code deps",
    "`dvc status data` stays up to date: .dvcignore keeps them out of the hashes",
)
def test_leftovers_do_not_change_the_data_stage(clone_a: Path) -> None:
    leftovers = [
        clone_a / "data" / "benchmarks" / ".manifest.csv.host-1.4242.0123abcd.tmp",
        clone_a / "data" / "raw.zip.part",
        clone_a / "moebius" / "data" / "__pycache__" / "smoke.cpython-311.pyc",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left behind")
    try:
        status = sh("dvc", "status", "data", cwd=clone_a)
    finally:
        for path in leftovers:
            path.unlink()
    assert "up to date" in status.stdout, status.stdout
