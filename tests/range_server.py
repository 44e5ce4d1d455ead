"""A range-capable HTTP server on 127.0.0.1 for remote-read tests and the remote benchmark: serves one
folder, answers `Range: bytes=a-b` with 206, and counts requests and body bytes sent."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from pathlib import Path


class Counter:
    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += n

    def reset(self) -> None:
        with self.lock:
            self.requests = self.bytes = 0


def _handler(root: Path, counter: Counter, fail_first: int):
    failures: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _file(self) -> Path | None:
            path = (root / self.path.split("?", 1)[0].lstrip("/")).resolve()
            return path if path.is_file() and root in path.parents else None

        def do_HEAD(self) -> None:
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            counter.add(0)

        def do_GET(self) -> None:
            failed = failures.setdefault(self.path, 0)
            if failed < fail_first:  # a server briefly unavailable, for every file it serves
                failures[self.path] = failed + 1
                counter.add(0)
                self.send_error(503)
                return
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            data = path.read_bytes()
            match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                body = data[start:end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(body)
            counter.add(len(body))

    return Handler


@contextlib.contextmanager
def serve(root: Path, fail_first: int = 0):
    """Serve `root` on a free port, answering the first `fail_first` GETs of each path with 503; yields (base
    URL, Counter)."""
    counter = Counter()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(Path(root).resolve(), counter, fail_first))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counter
    finally:
        server.shutdown()
        server.server_close()
