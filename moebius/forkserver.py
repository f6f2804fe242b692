"""A fork server for the workflow's CLI jobs: torch, diffusers, torch-fidelity, lpips, pandas imported once.

Why: at smoke scale most of a job's time is importing its libraries, not its work. A sampling job spends
~7 s importing torch + diffusers and ~2 s sampling; a scoring job ~6 s importing torch-fidelity + lpips
and ~1 s scoring; the smoke DAG starts ~140 such processes. While a local ``snakemake`` run lasts, one
server process holds those libraries imported (nothing else: no model, no tensor, no project module) and
forks a child per ``moebius …`` command; the command itself stays a normal process for Snakemake (its
own pid, exit status, log redirection, cancellation).

How (one Unix socket, newline-delimited JSON):

    client (the `moebius` script)                 server (imports done, single-threaded loop)
    connect; send {argv, cwd, env, package} + fds 0, 1, 2   ──►  check the request (below)
                                        ◄──  {"status": "started", "pid"}  or  {"status": "refused", ...}
                                                            fork: child = dup2 fds, chdir, env, run CLI
                                        ◄──  {"status": "exited", "code"}   (128 + n for signal n)

The child is what a fresh process of the same command would be: the client's argv, working directory,
environment and standard streams; Python's, NumPy's and torch's default RNGs reseeded from the OS as at
start-up; project modules (`moebius.*` beyond the CLI) imported fresh from disk in the child. A request
is refused, and the command runs in its own process as if there were no server, when anything that is
read at import time differs: the interpreter, the `moebius` package location, or any environment variable
of the families that libraries read on import (threads, caches, hub settings, Python paths). The same
happens when no server answers, so the server is only ever a shortcut: `MOEBIUS_NO_FORKSERVER=1`, a
torchrun rank (its own process by design), or a cluster job (no server on that node) run plainly.

Lifetime: `start` (the Snakefile's start hook, local runs only) spawns the server and exports its socket
to the jobs; `stop` ends it (success and error hooks); the server also ends when its parent (Snakemake)
is gone, so a killed run leaves no server behind. A client that disappears (Snakemake cancelled the job)
takes its child's process group with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENV_SOCKET = "MOEBIUS_FORKSERVER"  # set for the jobs of a local run: the server's socket path
ENV_DISABLE = "MOEBIUS_NO_FORKSERVER"  # 1 = never start or use a server
# Libraries read these when they are imported (OpenMP / BLAS thread counts, hub and cache folders, CUDA,
# import paths), so a child forked from a server imported under other values would not be the process the
# command asked for: such a request is refused and runs plainly.
IMPORT_TIME_ENV = ("OMP_", "MKL_", "KMP_", "OPENBLAS_", "GOTO", "VECLIB", "NUMEXPR", "HF_", "HUGGINGFACE", "TRANSFORMERS", "DIFFUSERS",
                   "TORCH", "PYTORCH", "CUDA", "NVIDIA", "PYTHON", "LD_", "XDG_CACHE", "MPL", "TQDM")
# What Snakemake sets for a job's threads (snakemake/shell.py): the server imports as a one-thread job,
# the jobs of this workflow at smoke and rehearsal scale; a job with more threads runs plainly.
JOB_THREAD_ENV = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                  "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# A torchrun rank (the launcher set these): always its own process.
RANK_ENV = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID")
# pandas: 0.4 s of every job that reads a manifest (moebius.data.manifest)
PRELOAD = ("torch", "torchvision", "diffusers", "torch_fidelity", "lpips", "scipy.linalg", "pandas")
READY_TIMEOUT_S = 180.0  # a client waits this long for a server that is still importing
_MAX_REQUEST = 1 << 20
_FOLDER_PREFIX = "moebius-fork-"


# ------------------------------------------------------------------------------------------- client
def forward(argv: list[str]) -> int | None:
    """Run ``moebius argv`` in a child of the run's fork server and return its exit status; None when
    there is no server to use (the caller then runs the command itself: nothing has run yet)."""
    path = os.environ.get(ENV_SOCKET)
    if not path or os.environ.get(ENV_DISABLE) == "1" or any(k in os.environ for k in RANK_ENV):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        request = {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), **_identity()}
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        conn.settimeout(READY_TIMEOUT_S)
        reader = conn.makefile("rb")
        reply = _read_reply(reader)
    except OSError:
        conn.close()
        return None
    if reply is None or reply.get("status") != "started":
        conn.close()
        return None  # refused, or the server went away before forking: run here
    conn.settimeout(None)
    try:
        done = _read_reply(reader)
    finally:
        conn.close()
    if done is None or done.get("status") != "exited":
        print("moebius: error: the fork server ended while running this command", file=sys.stderr)
        return 1
    return int(done["code"])


def _read_reply(reader) -> dict[str, Any] | None:
    line = reader.readline(_MAX_REQUEST)
    return json.loads(line) if line.endswith(b"\n") else None


def _identity() -> dict[str, str]:
    """What must be the same in client and server for a forked child to equal a fresh process."""
    import moebius

    return {"executable": os.path.realpath(sys.executable), "package": str(Path(moebius.__file__).resolve().parent)}


def _import_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV)}


def refusal(request: dict[str, Any], server_env: dict[str, str]) -> str | None:
    """Why a request cannot be served by this server (None: it can)."""
    if not (isinstance(request, dict) and isinstance(request.get("argv"), list) and isinstance(request.get("cwd"), str)
            and isinstance(request.get("env"), dict)):
        return "malformed request"
    mine = _identity()
    for key in ("executable", "package"):
        if request.get(key) != mine[key]:
            return f"{key} differs: {request.get(key)} != {mine[key]}"
    theirs, ours = _import_env(request["env"]), _import_env(server_env)
    if theirs != ours:
        names = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
        return f"import-time environment differs: {', '.join(names)}"
    return None


# ------------------------------------------------------------------------------------------- server
def serve(socket_path: str | Path, parent: int | None = None) -> None:
    """Bind `socket_path`, import the heavy libraries, then fork one child per request until SIGTERM or
    until `parent` (the pid that started us) is gone. Requests that arrive while importing wait."""
    import importlib

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(64)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    server_env = dict(os.environ)
    for name in PRELOAD:
        importlib.import_module(name)
    from diffusers import AutoencoderKL  # noqa: F401  (diffusers loads its model classes lazily)

    # What the imports put into the environment (torchvision: TORCHINDUCTOR_CACHE_DIR), as they would
    # in a fresh process of the command: the children get it on top of their client's environment.
    set_by_imports = {k: v for k, v in os.environ.items() if server_env.get(k) != v}
    print(f"forkserver: serving {socket_path} (pid {os.getpid()}, {', '.join(PRELOAD)} imported)", flush=True)
    children: dict[int, socket.socket] = {}  # child pid -> its client's connection
    try:
        while not stopping and (parent is None or os.getppid() == parent):
            ready, _, _ = select.select([listener, *children.values()], [], [], 0.5)
            for sock in ready:
                if sock is listener:
                    _accept(listener, server_env, set_by_imports, children)
                elif not _peek_alive(sock):  # the client is gone: so is its command
                    pid = next(p for p, c in children.items() if c is sock)
                    _kill_group(pid)
            _reap(children)
    finally:
        listener.close()
        Path(socket_path).unlink(missing_ok=True)
        if Path(socket_path).parent.name.startswith(_FOLDER_PREFIX):  # made by `start` for this server
            shutil.rmtree(Path(socket_path).parent, ignore_errors=True)
        for pid in list(children):
            _kill_group(pid)
        deadline = time.monotonic() + 10
        while children and time.monotonic() < deadline:
            _reap(children)
            time.sleep(0.05)
        print("forkserver: stopped", flush=True)


def _accept(listener: socket.socket, server_env: dict[str, str], set_by_imports: dict[str, str],
            children: dict[int, socket.socket]) -> None:
    conn, _ = listener.accept()
    fds: list[int] = []
    request: Any = None
    try:
        conn.settimeout(10)
        data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
        while not data.endswith(b"\n") and len(data) < _MAX_REQUEST:
            more = conn.recv(_MAX_REQUEST)
            if not more:
                raise OSError("request cut short")
            data += more
        request = json.loads(data)
        why = refusal(request, server_env) if len(fds) == 3 else "standard streams not received"
    except (OSError, ValueError) as exc:
        why = f"unreadable request: {exc}"
    if why is not None:
        print(f"forkserver: refused {request.get('argv') if isinstance(request, dict) else '?'}: {why}", flush=True)
        _send(conn, {"status": "refused", "reason": why})
        conn.close()
        for fd in fds:
            os.close(fd)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    request["env"] = {**set_by_imports, **request["env"]}
    pid = os.fork()
    if pid == 0:  # the child never returns from here
        _run_child(request, fds, conn, listener, children)
    for fd in fds:
        os.close(fd)
    print(f"forkserver: pid {pid}: {' '.join(request['argv'])}", flush=True)
    conn.settimeout(None)
    _send(conn, {"status": "started", "pid": pid})
    children[pid] = conn


def _run_child(request: dict[str, Any], fds: list[int], conn: socket.socket, listener: socket.socket,
               children: dict[int, socket.socket]) -> None:
    code = 1
    try:
        os.setpgid(0, 0)  # one group per command, so a cancelled command takes its own children along
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for sock in (listener, conn, *children.values()):
            sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENV_SOCKET, None)  # commands this one starts run plainly
        sys.argv = ["moebius", *request["argv"]]
        tempfile.tempdir = None  # re-read TMPDIR (Snakemake sets it per job)
        _reseed()
        from moebius import cli

        try:
            cli.run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001  (a traceback, as a plain process would print it)
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit

        atexit._run_exitfuncs()  # what interpreter shutdown runs in a plain process
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken stream: nothing left to save
                stream.flush()
        os._exit(code)


def _reseed() -> None:
    """Fresh OS entropy for the default RNGs, as a new process gets (the fork copied the server's)."""
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the client left; its child is killed when the loop notices


def _peek_alive(conn: socket.socket) -> bool:
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            code = os.waitstatus_to_exitcode(status)
            _send(conn, {"status": "exited", "code": code if code >= 0 else 128 - code})
            conn.close()


# ---------------------------------------------------------------------------------------- lifetime
class Handle:
    """A running server started by `start`: its process and its private folder (holding the socket)."""

    def __init__(self, process: subprocess.Popen, folder: Path) -> None:
        self.process, self.folder = process, folder

    @property
    def socket(self) -> Path:
        return self.folder / "socket"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        if os.environ.get(ENV_SOCKET) == str(self.socket):
            del os.environ[ENV_SOCKET]


def start(log: str | Path | None = None) -> Handle | None:
    """Spawn a server for this process's jobs and export its socket (`ENV_SOCKET`) to them; None when
    disabled. The socket lives in a fresh private folder under the system's temporary directory (a Unix
    socket path must stay under ~100 bytes, which a checkout's path may not)."""
    if os.environ.get(ENV_DISABLE) == "1":
        return None
    folder = Path(tempfile.mkdtemp(prefix=_FOLDER_PREFIX))
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115  (the child keeps it)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "moebius.forkserver", str(folder / "socket"), str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **dict.fromkeys(JOB_THREAD_ENV, "1")},
        )
    finally:
        if log is not None:
            out.close()
    handle = Handle(process, folder)
    deadline = time.monotonic() + 10  # binding comes before the imports: the socket appears at once
    while not handle.socket.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if not handle.socket.exists():
        handle.stop()
        return None
    os.environ[ENV_SOCKET] = str(handle.socket)
    return handle


if __name__ == "__main__":  # python -m moebius.forkserver SOCKET PARENT_PID (what `start` runs)
    serve(sys.argv[1], int(sys.argv[2]))
