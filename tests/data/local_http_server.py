"""A local HTTP file server fixture for the data tests: 127.0.0.1 only, Range support, request log.

A plain module (not conftest.py) so that it cannot shadow another folder's `conftest` on import;
test modules import the `http_server` fixture from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from moebius.rehearsal.server import loopback


@dataclass
class Served:
    """What the server holds and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate_at: dict[str, int] = field(default_factory=dict)  # path -> bytes actually sent
    ignore_range: set[str] = field(default_factory=set)
    hide_length: set[str] = field(default_factory=set)  # paths whose 416 answer omits "Content-Range: */N"
    log: list[dict] = field(default_factory=list)  # one entry per request: path, range, status, sent
    url: str = ""


def _handler(state: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: closing early is a real truncation

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            path = self.path.split("?")[0]
            rng = self.headers.get("Range")
            entry = {"path": path, "range": rng, "status": None, "sent": 0}
            state.log.append(entry)
            if path not in state.files:
                entry["status"] = 404
                self.send_error(404)
                return
            data = state.files[path]
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if match and path not in state.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    entry["status"] = 416
                    self.send_response(416)
                    if path not in state.hide_length:
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                entry["status"] = 206
            else:
                self.send_response(200)
                entry["status"] = 200
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            limit = state.truncate_at.get(path)
            if limit is not None:
                body = body[: max(0, limit - start)]  # claim the full length, send less, hang up
            # logged before the write: the client can have read every byte (and the test looked at the
            # log) before this thread returns from write
            entry["sent"] = len(body)
            self.wfile.write(body)

    return Handler


@pytest.fixture
def http_server():
    """Serve ``Served.files`` on a free 127.0.0.1 port for the duration of one test."""
    state = Served()
    with loopback(_handler(state)) as url:
        state.url = url
        yield state
