"""A loopback HTTP file server for the rehearsal: the real downloader fetches the generated archives from it.

``serve(folder)`` is a context manager: it binds 127.0.0.1 on a free port (never another
interface: nothing outside this machine can reach it), serves the plain files directly inside
``folder`` from a thread, and stops when the block ends. It answers what
``moebius.data.download`` asks: ``GET`` (and ``HEAD``) with ``Content-Length``, and a resumed
transfer's ``Range: bytes=<start>-`` with ``206`` + ``Content-Range``, or ``416`` with
``Content-Range: bytes */<length>`` when nothing is left after ``start``. Names are looked up in the
folder's own listing, so a request cannot leave the folder. Each request is logged (path, range,
status) for tests.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from moebius.errors import DataError

__all__ = ["Server", "loopback", "serve"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass
class Server:
    """A running server: its base URL (``http://127.0.0.1:<port>``), folder and request log."""

    url: str
    folder: Path
    log: list[dict] = field(default_factory=list)  # one per request: method, path, range, status


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection, as the downloader opens them

        def log_message(self, *args) -> None:  # the log list is the record; stderr stays quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            name = unquote(urlsplit(self.path).path).lstrip("/")
            rng = self.headers.get("Range")
            entry = {"method": self.command, "path": "/" + name, "range": rng, "status": 404}
            server.log.append(entry)
            path = server.folder / name
            # only a plain file directly in the folder: no sub-paths, no dot-files (atomic temporaries)
            if "/" in name or name.startswith(".") or not name or not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            start, end = 0, size - 1
            match = _RANGE.fullmatch(rng.strip()) if rng else None
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                if start >= size or end < start:
                    entry["status"] = 416
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                entry["status"] = 206
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                entry["status"] = 200
                self.send_response(200)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if body:
                with open(path, "rb") as fh, contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fh.seek(start)  # a client that hangs up mid-body is the client's business
                    remaining = end - start + 1
                    while remaining > 0 and (chunk := fh.read(min(remaining, 1 << 20))):
                        self.wfile.write(chunk)
                        remaining -= len(chunk)

    return Handler


@contextlib.contextmanager
def loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler`` on ``http://127.0.0.1:<free port>`` (yielded) in a thread until the block ends.

    127.0.0.1 only: nothing outside this machine can reach it. The data tests' in-memory server
    (tests/data/local_http_server.py) starts its handler here too.
    """
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              name="loopback-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[Server]:
    """Serve the files of ``folder`` on ``http://127.0.0.1:<free port>`` until the block ends."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"cannot serve {folder}: not a folder")
    state = Server(url="", folder=folder.resolve())
    with loopback(_handler(state)) as url:
        state.url = url
        yield state
