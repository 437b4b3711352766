"""Serving the API with uvicorn: refuse an exposed address without a token, bind, run in a thread, stop.

``papersys serve`` runs it beside the scheduler; ``papersys api`` runs it alone. The socket is bound here
(not by uvicorn) so that a taken port is one PapersysError line and port 0 reports the port it got.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from typing import Any

from papersys.config import ApiConfig, Config
from papersys.errors import PapersysError, UsageError
from papersys.search.query import Query, QueryOptions, Searcher

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def check_exposure(api: ApiConfig) -> None:
    """UsageError (exit 2) for an address other than loopback without a token: the API would be open."""
    if not is_loopback(api.host) and not api.token.get_secret_value():
        raise UsageError(
            f"[api] host {api.host!r} is not a loopback address and [api] token is empty: "
            'set a token (token = "env:NAME" reads it from the environment) or bind 127.0.0.1'
        )


class ApiServer:
    """uvicorn serving ``create_app(config)``, with one long-lived Searcher (the query model stays loaded)."""

    def __init__(self, config: Config, searcher: Searcher | None = None) -> None:
        check_exposure(config.api)
        self.config = config
        self.searcher = searcher or Searcher(config)
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind, serve from a background thread, return the base URL once requests are answered."""
        import uvicorn

        from papersys.web.app import create_app

        sock = self._bind()
        settings = uvicorn.Config(
            create_app(self.config, self.searcher),
            log_config=None,  # papersys's logging set-up (plain lines on stderr) applies
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(settings)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="papersys-api", daemon=True
        )
        self._thread.start()
        while not self._server.started:  # uvicorn sets it once it accepts connections
            if not self._thread.is_alive():
                raise PapersysError(f"the API server on {self.url} did not start (see the log above)")
            time.sleep(0.01)
        log.info("API and search page at %s", self.url)
        threading.Thread(target=self._warm, name="papersys-api-warm", daemon=True).start()
        return self.url

    def stop(self) -> None:
        """Finish the requests in flight (up to 5 s), close the socket, join the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _bind(self) -> socket.socket:
        host, port = self.config.api.host, self.config.api.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise PapersysError(f"cannot serve the API on {host}:{port}: {exc.strerror or exc}") from exc
        sock.listen(128)
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
        self.url = f"http://{shown}:{bound[1]}"
        return sock

    def _warm(self) -> None:
        """Load the default model's query encoder now rather than on the first query (best effort)."""
        try:
            query = Query.of(self.config, QueryOptions())
            self.searcher.encoder(query.model)
        except Exception as exc:  # the first query reports whatever is wrong, as a JSON error
            log.warning("query encoder not preloaded: %s", exc)


def run_api(config: Config) -> str:
    """Entry point of ``papersys api``: serve until SIGTERM/SIGINT, then stop cleanly; returns the URL."""
    from papersys.store.verify import check_data_dir

    check_exposure(config.api)
    check_data_dir(config.data_dir, write=False)  # a read-only replica needs only to read
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda s, _f: _stopping(s, stop))
    server = ApiServer(config)
    url = server.start()
    try:
        stop.wait()
    finally:
        server.stop()
    return url


def _stopping(signum: int, stop: threading.Event) -> None:
    log.info("received %s: stopping", signal.Signals(signum).name)
    stop.set()
