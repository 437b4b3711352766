"""The OpenAI-compatible HTTP engine (``backend = "openai"``): vLLM serve, TEI, Ollama, infinity, OpenAI.

``POST {base_url}/embeddings`` with ``{"model": name, "input": [...], "encoding_format": "float"}``, the way
the OpenAI SDK builds its URL, so ``base_url`` is what the server's docs give that SDK (usually ending in
``/v1``). The texts of one ``embed`` call go out as requests of ``request_batch_size`` texts, up to
``concurrent_requests`` at once (a thread pool: the work is waiting on sockets), and come back in input
order. 408, 429, 5xx, timeouts and dropped connections are retried ``retries`` times with doubling backoff
from ``backoff_s``, or after the server's ``Retry-After``; both are capped at ``max_retry_after_s``. Every
error carries the server's own message. The key lives in a SecretStr and in the header only.

It runs inline: no torch, no model in this process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import requests

from papersys.config import ModelConfig
from papersys.embed.engines.base import Vectors, no_vectors, normalized
from papersys.errors import EngineConfigError, EngineError

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CONFIG_STATUS = frozenset({401, 403, 404})  # a refused key, a wrong URL or model name: fix the config
PROBE_TEXT = "dimension probe"
_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class _Retry:
    """A failed attempt worth another: why, and the wait the server asked for (seconds), if it did."""

    why: str
    retry_after: float | None = None


class OpenAIEngine:
    """An Engine over an OpenAI-compatible embeddings endpoint; the first reply's dim is checked against
    ``dim`` (a probe at start, so a wrong URL, key, name or dim fails before any work)."""

    def __init__(self, model: ModelConfig) -> None:
        if model.backend != "openai" or not model.base_url:
            raise EngineConfigError(model.alias, "the HTTP engine needs backend = 'openai' and a base_url")
        self.model = model
        self.url = f"{model.base_url}/embeddings"
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        if model.concurrent_requests > 1:
            self._pool = ThreadPoolExecutor(model.concurrent_requests, thread_name_prefix=f"embed-{model.alias}")
        try:
            self._post([PROBE_TEXT], threading.Event())
        except BaseException:
            self.close()
            raise

    @property
    def dim(self) -> int:
        return self.model.dim  # every reply is checked against it

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return no_vectors(self.model.dim)
        step = self.model.request_batch_size
        slices = [list(texts[i : i + step]) for i in range(0, len(texts), step)]
        stop = threading.Event()  # set on the first failure: the other requests of this call give up too
        if len(slices) == 1 or self._pool is None:
            return np.concatenate([self._post(s, stop) for s in slices])
        futures = [self._pool.submit(self._post, s, stop) for s in slices]
        try:
            return np.concatenate([f.result() for f in futures])
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()  # not yet sent: dropped; in flight: they see ``stop`` before any retry
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    # one request, retried ---------------------------------------------------------------------------------
    def _post(self, texts: list[str], stop: threading.Event) -> Vectors:
        model = self.model
        attempt = 0
        while True:
            outcome = self._attempt(texts)
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt == model.retries or stop.wait(self._delay(attempt, outcome.retry_after)):
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                raise EngineError(model.alias, f"POST {self.url} failed after {tries}: {outcome.why}")
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        wait = self.model.backoff_s * (2**attempt) if retry_after is None else retry_after
        return min(wait, self.model.max_retry_after_s)

    def _attempt(self, texts: list[str]) -> Vectors | _Retry:
        payload = {"model": self.model.name, "input": texts, "encoding_format": "float"}
        try:
            resp = self._session().post(self.url, json=payload, timeout=self.model.timeout_s)
        except requests.Timeout:
            return _Retry(f"no answer within timeout_s = {self.model.timeout_s:g}")
        except requests.ConnectionError as exc:
            return _Retry(connection_problem(exc))
        if resp.status_code == 200:
            return self._vectors(resp, len(texts))
        message = f"HTTP {resp.status_code}: {server_message(resp)}"
        if resp.status_code in RETRY_STATUS:
            return _Retry(message, retry_after_seconds(resp.headers.get("Retry-After")))
        if resp.status_code in CONFIG_STATUS:
            raise EngineConfigError(self.model.alias, f"{self.url} refused model {self.model.name!r}: {message}")
        raise EngineError(self.model.alias, f"{self.url}: {message}")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:  # one per thread: a Session is not documented as thread-safe
            session = requests.Session()
            if self.model.api_key.get_secret_value():
                session.headers["Authorization"] = f"Bearer {self.model.api_key.get_secret_value()}"
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    # the answer ------------------------------------------------------------------------------------------
    def _vectors(self, resp: requests.Response, count: int) -> Vectors:
        alias = self.model.alias
        try:
            data = resp.json()["data"]
            rows = sorted(data, key=lambda item: int(item["index"]))
            array = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            what = f"{type(exc).__name__}: {exc}"
            raise EngineError(alias, f"{self.url} answered 200 without an embeddings list ({what})") from None
        if array.ndim != 2 or array.shape[0] != count:
            raise EngineError(alias, f"{self.url} returned {array.shape[0]} vector(s) for {count} text(s)")
        if array.shape[1] != self.model.dim:
            raise EngineConfigError(
                alias,
                f"{self.url} returns {array.shape[1]}-dim vectors for {self.model.name!r} but dim = "
                f"{self.model.dim}: set dim = {array.shape[1]} (or name the model you meant)",
            )
        if self.model.normalize:  # idempotent where the server normalises already
            array = normalized(array)
        return np.ascontiguousarray(array, dtype=np.float32)


def server_message(resp: requests.Response) -> str:
    """The server's own words: OpenAI's ``{"error": {"message"}}``, TEI/Ollama's ``{"error": "..."}``,
    vLLM's older ``{"message"}``, FastAPI's ``{"detail"}``, else the start of the body; one line."""
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    text = _message_of(body) if body is not None else None
    if text is None:
        text = resp.text.strip() or resp.reason or "no message"
    line = " ".join(str(text).split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 1] + "…"


def _message_of(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    if body.get("message"):
        return str(body["message"])
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else None


def connection_problem(exc: requests.ConnectionError) -> str:
    """A short reason for a failed connection (requests' own messages run to several hundred characters)."""
    text = str(exc)
    for needle, why in (
        ("Connection refused", "connection refused (is the server running?)"),
        ("Connection reset", "the server reset the connection"),
        ("RemoteDisconnected", "the server closed the connection without answering"),
        ("Connection aborted", "the server closed the connection"),
        ("Name or service not known", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
    ):
        if needle in text:
            return why
    return f"{type(exc).__name__}: {' '.join(text.split())[:_MESSAGE_CHARS]}"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header, delta-seconds or HTTP-date, in seconds from now; None when absent or garbage."""
    if not value:
        return None
    from papersys.ingest.oai import retry_after_seconds as parse  # lxml and sickle: only once a server asks

    return parse(value, now or datetime.now(UTC))
