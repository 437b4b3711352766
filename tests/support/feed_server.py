"""A real HTTP server on 127.0.0.1 serving an arXiv announcement feed: ETag / Last-Modified, 304 on a
conditional GET of an unchanged feed, scripted failures (503 with Retry-After) before the answer.

    with FeedServer(Path("tests/fixtures/feeds/arxiv_rss_cs.xml").read_bytes()) as server:
        fetch(server.base_url + "/cs"); server.requests  # → (path, headers) of every request
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

LAST_MODIFIED = "Tue, 24 Nov 2026 05:00:12 GMT"


@dataclass
class FeedServer:
    body: bytes
    failures: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)  # answered before the feed
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/rss"

    def __enter__(self) -> FeedServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.requests.append((self.path, dict(self.headers.items())))
                if owner.failures:
                    status, headers = owner.failures.popleft()
                    self._send(status, b"<html><body>busy</body></html>", headers)
                elif self.headers.get("If-None-Match") == owner.etag:
                    self._send(304, b"", {"ETag": owner.etag})
                else:
                    headers = {"ETag": owner.etag, "Last-Modified": LAST_MODIFIED}
                    self._send(200, owner.body, {"Content-Type": "application/rss+xml", **headers})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()
