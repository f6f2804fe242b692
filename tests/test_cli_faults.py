"""A full disk or a read-only folder is one line from the CLI, naming the output, and leaves nothing behind.

The faults are real: a tmpfs filled to the last block, a read-only bind mount, both made inside a
private mount namespace (`unshare -m`, or `unshare -rm` where only user namespaces are allowed), so
that they work as root too (chmod 0555 does not stop root) and touch nothing outside the test. Where
no namespace can be made, those tests are skipped; the in-process test at the end (writes that land
on /dev/full) still checks the mapping everywhere.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest

from moebius import atomic, cli

ROOT = Path(__file__).resolve().parents[1]
_VENV_MOEBIUS = Path(sys.executable).parent / "moebius"  # the project's .venv/bin/moebius in practice
MOEBIUS = str(_VENV_MOEBIUS) if _VENV_MOEBIUS.exists() else "moebius"

# $1: the mount point; the rest: the command. Prints the folder's listing after the command, so the test
# sees whether anything (a half-written file, a temporary) was left behind.
FULL_DISK = """
mount -t tmpfs -o size=64k tmpfs "$1" && mkdir "$1/out" || exit 90
dd if=/dev/zero of="$1/fill" bs=4096 2>/dev/null
dir=$1; shift; "$@"; rc=$?; echo "--- left:"; ls -A "$dir/out"; exit $rc
"""
READ_ONLY = """
mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 90
dir=$1; shift; "$@"; rc=$?; echo "--- left:"; ls -A "$dir"; exit $rc
"""


@functools.lru_cache(maxsize=1)
def _unshare() -> tuple[str, ...] | None:
    """The unshare flags that give this process a private mount namespace where tmpfs can be mounted."""
    for flags in (("-m",), ("-rm",)):
        try:
            probe = subprocess.run(
                ["unshare", *flags, "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                capture_output=True, timeout=30,
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return None
        if probe.returncode == 0:
            return ("unshare", *flags)
    return None


def in_namespace(script: str, mount: Path, *command: str) -> subprocess.CompletedProcess:
    prefix = _unshare()
    if prefix is None:
        pytest.skip("no private mount namespace here (unshare -m / -rm); see the /dev/full test below")
    mount.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [*prefix, "sh", "-c", script, "sh", str(mount), *command],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 90, f"could not set up the fault: {result.stderr}"
    return result


def left_behind(stdout: str) -> list[str]:
    return stdout.split("--- left:", 1)[1].split()


@pytest.mark.hostile(
    "`moebius config schema --out` onto a tmpfs filled to the last block",
    "one line `disk full: <output path>`, exit 2; no file or temporary left",
)
def test_disk_full_is_one_line_naming_the_output(tmp_path: Path) -> None:
    mnt = tmp_path / "disk"
    out = mnt / "out" / "schema.json"
    result = in_namespace(FULL_DISK, mnt, MOEBIUS, "config", "schema", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"moebius: error: disk full: {out}"]
    assert left_behind(result.stdout) == []


@pytest.mark.hostile(
    "`moebius config schema --out` into a read-only mounted folder (as root too)",
    "one line `read-only file system: <output path>`, exit 2; nothing written",
)
def test_read_only_folder_is_one_line_naming_the_output(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    out = ro / "schema.json"
    result = in_namespace(READ_ONLY, ro, MOEBIUS, "config", "schema", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"moebius: error: read-only file system: {out}"]
    assert left_behind(result.stdout) == []


CHECKPOINT_WRITERS = """
import sys, torch
from moebius.atomic import atomic_path
from moebius.cli import os_error_line
from moebius.train.state import save_tensors

def optimizer(path):
    with atomic_path(path) as tmp:  # as moebius.train.state.save_state writes optimizer.pt
        torch.save({"w": torch.zeros(100_000)}, tmp)

for path, write in [
    (sys.argv[1] + "/weights.safetensors", lambda p: save_tensors(p, {"w": torch.zeros(100_000)})),
    (sys.argv[1] + "/optimizer.pt", optimizer),
]:
    try:
        write(path)
        print("written", path)
    except OSError as exc:
        print(os_error_line(exc))
"""


@pytest.mark.hostile(
    "safetensors and torch.save checkpoints written onto a full disk (they raise their own error types)",
    "both become OSError ENOSPC naming the checkpoint, i.e. the CLI's one `disk full` line",
)
def test_checkpoint_writers_on_a_full_disk_say_disk_full(tmp_path: Path) -> None:
    mnt = tmp_path / "disk"
    result = in_namespace(FULL_DISK, mnt, sys.executable, "-c", CHECKPOINT_WRITERS, str(mnt / "out"))
    lines = result.stdout.split("--- left:")[0].splitlines()
    assert lines == [f"disk full: {mnt / 'out' / name}" for name in ("weights.safetensors", "optimizer.pt")]
    assert left_behind(result.stdout) == []


@pytest.mark.hostile(
    "`moebius config schema --out` whose bytes land on /dev/full (ENOSPC from the kernel, no file name)",
    "one line `disk full: <output path>`, exit 2 (runs without namespaces)",
)
def test_disk_full_in_process_names_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def to_dev_full(final: Path) -> Path:
        tmp = final.parent / atomic.tmp_name(final)
        tmp.symlink_to("/dev/full")
        return tmp

    monkeypatch.setattr(atomic, "_create_tmp", to_dev_full)
    monkeypatch.chdir(ROOT)
    out = tmp_path / "schema.json"
    monkeypatch.setattr(sys, "argv", ["moebius", "config", "schema", "--out", str(out)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"moebius: error: disk full: {out}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.hostile("stderr replaced (and the old one closed) between two CLI calls in one process",
                     "the package's notices go to the stderr of the moment, never 'Logging error' on a closed stream")
def test_notices_follow_the_current_stderr(monkeypatch) -> None:
    import io
    import logging

    from moebius import cli

    logger = logging.getLogger("moebius")
    before = list(logger.handlers)
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        cli._show_notices()
        logging.getLogger("moebius.train").info("resumed from step 3")
        first.close()  # the first call's captured stream is gone
        monkeypatch.setattr(sys, "stderr", second)
        cli._show_notices()  # a second main() in the same process
        logging.getLogger("moebius.train").info("removed 3 temporary file(s)")
        assert second.getvalue() == "moebius: removed 3 temporary file(s)\n"
    finally:
        for handler in logger.handlers[:]:
            if handler not in before:
                logger.removeHandler(handler)
