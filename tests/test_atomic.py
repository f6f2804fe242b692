"""Atomic writes: the final name holds a complete, synced, normally readable file or nothing."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from moebius import atomic
from moebius.atomic import atomic_open, atomic_path, clean_stale_tmp, tmp_name, write_json, write_text

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("{broken")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"v": 1' in target.read_text()


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path: Path, mask: int, mode: int) -> None:
    with umask(mask):
        write_text(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "b.png") as tmp:
            tmp.write_bytes(b"png")  # writers that open the path themselves (PIL, torch, safetensors)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "b.png").stat().st_mode) == mode


def test_atomic_path_syncs_the_file_and_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "sub" / "w.safetensors"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"weights")
    assert target.stat().st_ino in synced  # the bytes, before the rename
    assert target.parent.stat().st_ino in synced  # the rename itself


@pytest.mark.hostile(
    "a writer SIGKILLed inside atomic_open, after half its bytes",
    "the final name never appears; the next write into that folder removes the orphaned temporary",
)
def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    victim = tmp_path / "table.csv"
    code = (
        "import os, signal, sys\n"
        "from moebius.atomic import atomic_open\n"
        "with atomic_open(sys.argv[1]) as fh:\n"
        "    fh.write('id,value\\n1,'); fh.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code, str(victim)], cwd=ROOT, capture_output=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    orphans = [p.name for p in tmp_path.iterdir()]
    assert len(orphans) == 1 and orphans[0].startswith(".table.csv.") and orphans[0].endswith(".tmp")
    assert not victim.exists()

    write_text(tmp_path / "other.csv", "id\n")  # a later job writing into the same folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.hostile(
    "temporaries of a dead writer, a live one, another host's (fresh and two days old), and look-alikes",
    "only the dead writer's and the two-day-old foreign one are removed",
)
def test_clean_stale_tmp_removes_only_orphans(tmp_path: Path) -> None:
    dead = tmp_path / f".a.png.{atomic._HOST}.{_dead_pid()}.0123abcd.tmp"
    live = tmp_path / f".b.png.{atomic._HOST}.{os.getpid()}.0123abcd.tmp"
    fresh_foreign = tmp_path / ".c.png.node17.4242.0123abcd.tmp"
    old_foreign = tmp_path / ".d.png.node17.4242.0123abcd.tmp"
    lookalikes = [tmp_path / n for n in (".e.tmp", "f.tmp", ".g.png.abcdefgh.tmp", "h.zip.part", "i.png")]
    for path in [dead, live, fresh_foreign, old_foreign, *lookalikes]:
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old_foreign, (two_days_ago, two_days_ago))
    for path in lookalikes:
        os.utime(path, (two_days_ago, two_days_ago))

    removed = clean_stale_tmp(tmp_path)
    assert sorted(removed) == sorted([dead, old_foreign])
    assert sorted(tmp_path.iterdir()) == sorted([live, fresh_foreign, *lookalikes])


def test_temporary_names_stay_short_and_parse(tmp_path: Path) -> None:
    long_name = "x" * 240 + ".png"  # a legal file name that mkstemp's scheme would push past NAME_MAX
    name = tmp_name(tmp_path / long_name)
    assert len(name) < 255
    assert atomic._TMP_RE.match(name)["pid"] == str(os.getpid())
    write_text(tmp_path / long_name, "ok")
    assert (tmp_path / long_name).read_text() == "ok"
