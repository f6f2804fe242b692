"""The fork server (moebius/forkserver.py): a forwarded command is the command a plain process would run
(same files, output, exit status), it is refused and runs plainly when the import-time environment
differs, and neither a cancelled command nor a dead workflow leaves a process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from moebius import forkserver

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "config" / "smoke.yaml")


def _moebius(*args: str, env: dict[str, str], cwd: Path = ROOT, **kw) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "moebius"
    return subprocess.Popen([str(exe), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _run(*args: str, env: dict[str, str], cwd: Path = ROOT) -> tuple[int, str, str]:
    proc = _moebius(*args, env=env, cwd=cwd)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _alive(pid: int | str) -> bool:
    """A process that runs (a zombie waiting to be reaped has finished)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _served(log: Path) -> list[str]:
    """The commands the server forked a child for (one `forkserver: pid N: argv` line each)."""
    return [line for line in log.read_text().splitlines() if line.startswith("forkserver: pid ")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module (its imports take seconds), as the Snakefile's start hook makes it."""
    log = tmp_path_factory.mktemp("forkserver") / "forkserver.log"
    before = os.environ.get(forkserver.ENV_SOCKET)
    handle = forkserver.start(log=log)
    assert handle is not None
    env = {**os.environ, **dict.fromkeys(forkserver.JOB_THREAD_ENV, "1")}  # a one-thread Snakemake job
    plain = {k: v for k, v in env.items() if k != forkserver.ENV_SOCKET}
    yield handle, log, env, plain
    handle.stop()
    assert forkserver.ENV_SOCKET not in os.environ or os.environ[forkserver.ENV_SOCKET] == before
    assert not handle.folder.exists()


def _benchmark(folder: Path) -> Path:
    from PIL import Image

    from moebius.data.manifest import row_for_png, write_manifest

    folder.mkdir()
    rows = []
    for i in range(6):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"img{i}.png")
        rows.append(row_for_png(f"img{i}", "test", (folder / f"img{i}.png").read_bytes(), 32, 32))
    write_manifest(folder, rows)
    return folder


def test_forwarded_command_writes_what_a_plain_process_writes(server, tmp_path: Path) -> None:
    _, log, env, plain = server
    images = _benchmark(tmp_path / "images")
    outs = {}
    for name, job_env in (("plain", plain), ("forwarded", env)):
        outs[name] = tmp_path / name
        code, _, err = _run("--config", SMOKE, "masks", "generate", "--benchmark", "places2_test",
                              "--images", str(images), "--out", str(outs[name]), env=job_env, cwd=tmp_path)
        assert code == 0, err
    served = _served(log)
    assert sum(str(outs["forwarded"]) in line for line in served) == 1
    assert not any(str(outs["plain"]) in line for line in served)
    files = sorted(p.name for p in outs["plain"].iterdir())
    assert files == sorted(p.name for p in outs["forwarded"].iterdir()) and len(files) == 7  # 6 masks + manifest
    for name in files:
        assert (outs["plain"] / name).read_bytes() == (outs["forwarded"] / name).read_bytes(), name


@pytest.mark.hostile("a forwarded command given a config file that does not exist",
                     "the one-line user error on the command's own stderr, exit status 2, as without a server")
def test_forwarded_user_error_keeps_its_line_and_status(server, tmp_path: Path) -> None:
    _, log, env, _ = server
    missing = tmp_path / "nope.yaml"
    code, out, err = _run("--config", str(missing), "config", "hash", env=env, cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"moebius: error: config file not found: {missing}"]
    assert any(str(missing) in line for line in _served(log))


@pytest.mark.hostile("the command's client is killed (Snakemake cancels the job) while its child runs",
                     "the server kills the child's process group: nothing keeps running")
def test_killed_client_takes_its_command_along(server, tmp_path: Path) -> None:
    _, log, env, _ = server
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # reading a FIFO with no writer blocks: the child waits until it is killed
    client = _moebius("--config", str(fifo), "config", "hash", env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not any(str(fifo) in line for line in _served(log)):
        assert time.monotonic() < deadline and client.poll() is None, "the command was not forwarded"
        time.sleep(0.1)
    line = next(line for line in _served(log) if str(fifo) in line)
    child = int(line.split()[2].rstrip(":"))
    assert _alive(child)
    client.send_signal(signal.SIGKILL)
    client.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


@pytest.mark.hostile("a job whose thread settings differ from the server's (a Snakemake job with threads: 2)",
                     "refused, naming the variables; the command runs in its own process and succeeds")
def test_other_import_time_environment_runs_plainly(server, tmp_path: Path) -> None:
    _, log, env, _ = server
    served_before = len(_served(log))
    two_threads = {**env, **dict.fromkeys(forkserver.JOB_THREAD_ENV, "2")}
    code, out, err = _run("--config", SMOKE, "config", "hash", env=two_threads, cwd=tmp_path)
    assert code == 0 and len(out.strip()) == 12, err
    assert len(_served(log)) == served_before
    assert "import-time environment differs: GOTO_NUM_THREADS, MKL_NUM_THREADS" in log.read_text()


def test_refusal_names_what_differs() -> None:
    request = {"argv": ["config", "hash"], "cwd": "/", "env": {"OMP_NUM_THREADS": "1", "HOME": "/a"},
               **forkserver._identity()}
    server_env = {"OMP_NUM_THREADS": "1", "HOME": "/b"}  # HOME is read per call, not at import
    assert forkserver.refusal(request, server_env) is None
    assert "OMP_NUM_THREADS" in forkserver.refusal(request, {"OMP_NUM_THREADS": "4"})
    assert "HF_HOME" in forkserver.refusal({**request, "env": {**request["env"], "HF_HOME": "/x"}}, server_env)
    assert "package differs" in forkserver.refusal({**request, "package": "/elsewhere/moebius"}, server_env)
    assert "executable differs" in forkserver.refusal({**request, "executable": "/usr/bin/python9"}, server_env)
    # Refused before any field is used, so a bad request cannot stop the server
    for bad in (["config", "hash"], {**request, "argv": "config hash"}, {k: v for k, v in request.items() if k != "env"}):
        assert forkserver.refusal(bad, server_env) == "malformed request"


def test_no_server_answering_runs_plainly(tmp_path: Path) -> None:
    env = {**os.environ, forkserver.ENV_SOCKET: str(tmp_path / "gone.sock")}
    code, out, err = _run("--config", SMOKE, "config", "hash", env=env, cwd=tmp_path)
    assert code == 0 and len(out.strip()) == 12, err


@pytest.mark.hostile("the workflow that started the server dies without stopping it (kill -9)",
                     "the server notices its parent is gone and exits, removing its socket folder")
def test_server_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = ("import sys; from moebius import forkserver; h = forkserver.start(); "
              "print(h.process.pid, h.folder, flush=True)")
    parent = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert parent.returncode == 0, parent.stderr
    pid, folder = parent.stdout.split()
    deadline = time.monotonic() + 120  # it finishes its imports first, then sees the parent gone
    while (_alive(pid) or Path(folder).exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid) and not Path(folder).exists()
