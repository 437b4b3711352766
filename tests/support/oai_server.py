"""A real OAI-PMH server on 127.0.0.1 that answers like arXiv, with scripted replies and injected faults.

    with OAIServer(synthetic_papers(500, seed=1), page_size=100) as server:
        harvest(server.url)  # http://127.0.0.1:PORT/oai
        server.faults.at(3, HTTPStatus.arxiv_503(retry_after=1)); server.requests  # → the request log

Also a process: ``uv run python tests/support/oai_server.py --papers 100000 --page-size 1000 --seed 1``
prints its URL on the first stdout line and serves until killed. See devdoc/testing.md.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

if __package__ in (None, ""):  # run as a script: make the `support` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.oai_faults import (
    BadResumptionToken,
    BillionLaughs,
    DropConnection,
    ExternalEntity,
    Fault,
    FaultPlan,
    HTMLPage,
    HTTPStatus,
    ResetMidBody,
    Slow,
    TruncatedXML,
)
from support.oai_protocol import EARLIEST, FinalToken, Reply, Repository, Response, TokenStyle
from support.oai_records import Paper, record_bytes, render_record, set_specs_for

__all__ = [
    "BadResumptionToken", "BillionLaughs", "DropConnection", "ExternalEntity", "Fault", "HTMLPage",
    "HTTPStatus", "LoggedRequest", "OAIServer", "Paper", "ResetMidBody", "Response", "Slow", "TruncatedXML",
    "render_record", "set_specs_for",
]  # fmt: skip


@dataclass
class LoggedRequest:
    """One request as the server saw it. ``status`` is None when no response was sent (dropped)."""

    number: int
    method: str
    path: str
    verb: str | None
    params: dict[str, str]
    fault: str | None
    time: float  # time.time() at arrival
    status: int | None = None
    oai_error: str | None = None
    records: int = 0  # records in the page the server computed (a fault may have mangled or skipped it)
    headers: dict[str, str] = field(default_factory=dict)  # request headers (e.g. to check Authorization)


class _Exchange:
    """One request's connection, as handed to a fault (see ``oai_faults.Exchange``)."""

    def __init__(self, handler: _Handler, entry: LoggedRequest, make: Callable[[], Reply]) -> None:
        self.handler, self.entry, self._make = handler, entry, make
        self._reply: Reply | None = None

    def reply(self) -> Reply:
        if self._reply is None:
            self._reply = self._make()
            self.entry.oai_error, self.entry.records = self._reply.oai_error, self._reply.records
        return self._reply

    def base(self) -> Response:
        return self.reply().response

    def send(self, response: Response, *, limit: int | None = None, reset: bool = False) -> None:
        h = self.handler
        self.entry.status = response.status  # logged before the first byte leaves: clients see a full log
        h.send_response(response.status)
        for name, value in response.headers:
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(response.body)))
        h.end_headers()
        h.wfile.write(response.body if limit is None else response.body[:limit])
        if reset:  # SO_LINGER 0 turns close() into a TCP RST
            h.wfile.flush()
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True

    def drop(self) -> None:
        self.handler.close_connection = True

    def wait(self, seconds: float) -> None:
        self.handler.server.owner._stopping.wait(seconds)

    def oai_error(self, code: str, message: str) -> Response:
        return self.handler.server.owner.repository.error(code, message, self.entry.params)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: OAIServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", owner.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # the client went away (its timeout, a fault's reset): expected, not a server bug
        self.owner.errors.append(traceback.format_exc())
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like arXiv: a harvest reuses one connection
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server: _HTTPServer

    def version_string(self) -> str:
        return "Apache"  # the Server header arXiv answers with

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.owner._serve(self, "GET", url.path, url.query)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        self.server.owner._serve(self, "POST", urlsplit(self.path).path, body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is `server.requests`


class OAIServer:
    """arXiv's OAI-PMH on 127.0.0.1 (port 0 = any free port). ``papers`` may be changed between harvests
    (replace items or reassign the list: papers are immutable); ``faults`` schedules failures; ``requests``
    logs every request; ``errors`` holds tracebacks of server-side bugs (tests should expect it empty)."""

    def __init__(
        self,
        papers: Iterable[Paper] = (),
        *,
        page_size: int = 1000,
        token_style: TokenStyle = "current",
        final_token: FinalToken = "auto",
        earliest: date = EARLIEST,
        content_type: str = "text/xml",  # arXiv sends no charset: clients must decode from the XML declaration
        script: Iterable[Response] | None = None,
        clock: Callable[[], datetime] | None = None,
        port: int = 0,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.papers: list[Paper] = list(papers)
        self.page_size = page_size
        self.port = port
        self.faults = FaultPlan()
        self.requests: list[LoggedRequest] = []
        self.errors: list[str] = []
        self._script: deque[Response] | None = deque(script) if script is not None else None
        self._count = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.repository = Repository(
            "",
            token_style=token_style,
            final_token=final_token,
            earliest=earliest,
            content_type=content_type,
            clock=clock or (lambda: datetime.now(UTC)),
        )

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> OAIServer:
        self._httpd = _HTTPServer(self)
        self.port = self._httpd.server_address[1]
        self.repository.base_url = self.url
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="oai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> OAIServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oai"

    @property
    def request_count(self) -> int:
        """Requests received so far (``faults.at(server.request_count + 2, …)`` = the second one from now)."""
        return self._count

    # -- what tests change ---------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every resumption token issued so far is answered with badResumptionToken from now on."""
        self.repository.expire_tokens()

    def script(self, responses: Iterable[Response]) -> None:
        """Scripted mode: answer the next requests with these responses, in order, whatever was asked;
        after the last one, HTTP 500 "script exhausted". Faults still apply on top."""
        with self._lock:
            self._script = deque(responses)

    def upsert(self, *papers: Paper) -> None:
        """Add papers or replace those with the same id (e.g. ``paper.revised(date)``)."""
        new = {p.id: p for p in papers}
        kept = [new.pop(p.id, p) for p in self.papers]
        self.papers = kept + list(new.values())

    def delete(self, arxiv_id: str, datestamp: date) -> None:
        """Mark a paper deleted as of ``datestamp`` (arXiv keeps deleted records: deletedRecord=persistent)."""
        self.papers = [p.as_deleted(datestamp) if p.id == arxiv_id else p for p in self.papers]

    def hide_from_list_records(self, *ids: str) -> None:
        """ListRecords silently leaves these ids out (no error, a shorter list); ListIdentifiers and
        GetRecord still answer with them, as for a record arXiv's list missed."""
        self.repository.hidden_from_list_records = frozenset(ids)

    def warm(self, metadata_prefix: str = "arXiv") -> None:
        """Render every record now, so the first harvest measures paging rather than rendering."""
        for paper in self.papers:
            record_bytes(paper, metadata_prefix)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- serving -------------------------------------------------------------------------------------------

    def _serve(self, handler: _Handler, method: str, path: str, query: str) -> None:
        params = parse_qs(query, keep_blank_values=True)
        flat = {k: v[0] for k, v in params.items()}
        with self._lock:
            self._count += 1
            number = self._count
            fault = self.faults.pick(number, "resumptionToken" in params)
            name = fault.name if fault else None
            entry = LoggedRequest(number, method, path, flat.get("verb"), flat, name, time.time())
            entry.headers = dict(handler.headers.items())
            self.requests.append(entry)
        ex = _Exchange(handler, entry, lambda: self._reply(path, params))
        if fault is not None:
            fault.respond(ex)
        else:
            ex.send(ex.base())

    def _reply(self, path: str, params: dict[str, list[str]]) -> Reply:
        verb = params["verb"][0] if "verb" in params else None
        with self._lock:
            if self._script is not None:
                if self._script:
                    return Reply(self._script.popleft(), verb)
                return Reply(Response(500, b"script exhausted\n", (("Content-Type", "text/plain"),)), verb)
        if path != "/oai":
            return Reply(
                Response(404, b"<html><body>Not Found</body></html>\n", (("Content-Type", "text/html"),)), verb
            )
        return self.repository.handle(params, self.papers, self.page_size)


def main(argv: Sequence[str] | None = None) -> None:
    import signal

    from support.papers import synthetic_papers

    parser = argparse.ArgumentParser(description="Serve synthetic arXiv papers over OAI-PMH on 127.0.0.1.")
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--token-style", choices=("current", "legacy"), default="current")
    parser.add_argument("--deleted-fraction", type=float, default=0.0)
    parser.add_argument("--warm", choices=("arXiv", "arXivRaw", "none"), default="arXiv")
    args = parser.parse_args(argv)
    papers = synthetic_papers(args.papers, args.seed, args.start, args.days, deleted_fraction=args.deleted_fraction)
    server = OAIServer(papers, page_size=args.page_size, token_style=args.token_style, port=args.port)
    if args.warm != "none":
        server.warm(args.warm)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        print(server.url, flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
