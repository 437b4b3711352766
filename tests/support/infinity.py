"""A real OpenAI-compatible embedding server for the HTTP engine's tests: infinity-emb serving the bundled
all-MiniLM-L6-v2 on CPU, from its own environment (tests/servers/infinity: pinned, locked, synced on first
use), and a loopback proxy that can answer the first requests with 429/5xx before forwarding to it.

The proxy never makes vectors: every 200 it returns came from infinity.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parents[1] / "servers" / "infinity"
SERVED_NAME = "minilm"
API_KEY = "papersys-test-key"
READY_TIMEOUT_S = 300.0  # a cold start imports torch; on 2 busy cores that can take a minute or more


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def infinity_executable() -> Path:
    """infinity_emb of the test server's own environment, synced from its lock when missing."""
    exe = PROJECT / ".venv" / "bin" / "infinity_emb"
    if not exe.exists():
        uv = shutil.which("uv")
        if uv is None:
            raise RuntimeError("uv is needed to install the test embedding server (tests/servers/infinity)")
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        subprocess.run([uv, "sync", "--locked", "--project", str(PROJECT)], check=True, env=env, timeout=1800)
    return exe


class InfinityServer:
    """One infinity process on a free loopback port, in its own process group (killed whole)."""

    def __init__(self, model_path: str, log_path: Path) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"  # --url-prefix /v1: the embeddings route, like most servers
        self.log_path = log_path
        cmd = [
            str(infinity_executable()), "v2", "--model-id", model_path, "--served-model-name", SERVED_NAME,
            "--engine", "torch", "--device", "cpu", "--host", "127.0.0.1", "--port", str(self.port),
            "--url-prefix", "/v1", "--api-key", API_KEY, "--no-model-warmup", "--log-level", "warning",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            INFINITY_ANONYMOUS_USAGE_STATS="0",
            DO_NOT_TRACK="1",
            OMP_WAIT_POLICY="PASSIVE",
        )
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"infinity exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.root}/health", timeout=2).status_code == 200:  # not under the prefix
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"infinity not ready after {timeout_s:g}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL the whole server, as a crash would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


# a proxy in front of the real server ------------------------------------------------------------------------
Fault = tuple[int, dict[str, str], bytes]  # status, headers, body


def openai_error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "server_error"}}).encode()


class FaultProxy:
    """Forwards every request to ``upstream`` (the real server), except the first ``len(faults)`` requests
    after ``inject``, which get the given answers. ``arrivals`` holds each request's monotonic time."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests the proxy held at once (forwarded ones included)
        self._faults: list[Fault | Callable[[], Fault]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def inject(self, *faults: Fault | Callable[[], Fault]) -> None:
        with self._lock:
            self._faults = list(faults)
            self.arrivals.clear()

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _next(self) -> Fault | None:
        with self._lock:
            self.arrivals.append(time.monotonic())
            if not self._faults:
                return None
            fault = self._faults.pop(0)
        return fault() if callable(fault) else fault

    def _forward(self, path: str, body: bytes, headers: dict[str, str]) -> Fault:
        resp = requests.post(self.upstream + path, data=body, headers=headers, timeout=120)
        return resp.status_code, {"Content-Type": resp.headers.get("Content-Type", "application/json")}, resp.content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy._enter()
                try:
                    answer = proxy._next()
                    if answer is None:
                        keep = {k: v for k, v in self.headers.items() if k.lower() in {"authorization", "content-type"}}
                        answer = proxy._forward(self.path, body, keep)
                finally:
                    proxy._leave()
                status, headers, payload = answer
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
