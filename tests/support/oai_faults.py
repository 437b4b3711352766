"""Faults the OAI test server can inject, and the deterministic plan that says which request gets which.

A fault is a small object with a ``name`` and ``respond(exchange)``; the exchange gives it the normal
response (computed lazily) and raw control of the connection. Plans: by request number, next request(s),
next request(s) carrying a resumption token, every request, or a seeded random mix.
"""

from __future__ import annotations

import random as _random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from support.oai_protocol import Response


class Exchange(Protocol):
    """What a fault may do with the request it was given (implemented by the server)."""

    def base(self) -> Response: ...  # the response the server would have sent
    def send(self, response: Response, *, limit: int | None = None, reset: bool = False) -> None: ...
    def drop(self) -> None: ...  # close without sending a byte
    def wait(self, seconds: float) -> None: ...  # sleep, cut short when the server stops
    def oai_error(self, code: str, message: str) -> Response: ...


class Fault:
    name: ClassVar[str] = "fault"

    def respond(self, ex: Exchange) -> None:
        raise NotImplementedError


ARXIV_503_BODY = b"<html><body>\n<h1>Retry after 10 seconds</h1>\n</body></html>\n"  # recorded 2018-06-21


@dataclass(frozen=True)
class HTTPStatus(Fault):
    """An HTTP error with optional ``Retry-After`` (seconds or an HTTP-date string) and body."""

    status: int = 503
    retry_after: int | str | None = None
    body: bytes = b""
    content_type: str = "text/html"
    close: bool = True  # arXiv closes the connection after its 503

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"http_{self.status}"

    @classmethod
    def arxiv_503(cls, retry_after: int | str = 10) -> HTTPStatus:
        """arXiv's flow-control reply as recorded: 503, ``Retry-After``, a small HTML body, Connection: close."""
        body = ARXIV_503_BODY if retry_after == 10 else ARXIV_503_BODY.replace(b"10", str(retry_after).encode())
        return cls(503, retry_after, body)

    def respond(self, ex: Exchange) -> None:
        headers = [("Content-Type", self.content_type)]
        if self.retry_after is not None:
            headers.append(("Retry-After", str(self.retry_after)))
        if self.close:
            headers.append(("Connection", "close"))
        ex.send(Response(self.status, self.body, tuple(headers)))


@dataclass(frozen=True)
class DropConnection(Fault):
    """The connection closes before any byte of a response."""

    name: ClassVar[str] = "drop"

    def respond(self, ex: Exchange) -> None:
        ex.drop()


@dataclass(frozen=True)
class ResetMidBody(Fault):
    """Headers with the full Content-Length, ``fraction`` of the body, then a TCP reset."""

    fraction: float = 0.5
    name: ClassVar[str] = "reset"

    def respond(self, ex: Exchange) -> None:
        base = ex.base()
        ex.send(base, limit=int(len(base.body) * self.fraction), reset=True)


def truncate_in_record(body: bytes, fraction: float = 0.5) -> bytes:
    """Cut ``body`` inside the ``<record>`` nearest ``fraction`` of its length (halfway into that record)."""
    target = int(len(body) * fraction)
    start = body.rfind(b"<record>", 0, max(target, 1))
    if start < 0:
        start = body.find(b"<record>")
    if start < 0:
        return body[: max(1, target)]
    end = body.find(b"</record>", start)
    return body[: start + max(10, (end - start) // 2)]


@dataclass(frozen=True)
class TruncatedXML(Fault):
    """HTTP 200 whose XML stops mid-record; Content-Length matches, so only an XML parser notices."""

    fraction: float = 0.5
    name: ClassVar[str] = "truncated"

    def respond(self, ex: Exchange) -> None:
        base = ex.base()
        ex.send(Response(base.status, truncate_in_record(base.body, self.fraction), base.headers))


@dataclass(frozen=True)
class Slow(Fault):
    """Sleep ``seconds`` before answering normally (for client read timeouts)."""

    seconds: float = 5.0
    name: ClassVar[str] = "slow"

    def respond(self, ex: Exchange) -> None:
        base = ex.base()
        ex.wait(self.seconds)
        ex.send(base)


@dataclass(frozen=True)
class BadResumptionToken(Fault):
    """An OAI ``badResumptionToken`` error (HTTP 200), whatever the request was."""

    name: ClassVar[str] = "bad_resumption_token"

    def respond(self, ex: Exchange) -> None:
        ex.send(ex.oai_error("badResumptionToken", "The resumptionToken supplied is illegal for this repository"))


MAINTENANCE_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>arXiv is undergoing maintenance</title></head>\n"
    b"<body><h1>We are down for maintenance</h1><p>Please try again later.</p>\n</body></html>\n"
)


@dataclass(frozen=True)
class HTMLPage(Fault):
    """HTTP 200 with an HTML page instead of XML (a proxy or maintenance page); well-formed HTTP."""

    body: bytes = MAINTENANCE_HTML
    content_type: str = "text/html; charset=utf-8"
    name: ClassVar[str] = "html"

    def respond(self, ex: Exchange) -> None:
        ex.send(Response(200, self.body, (("Content-Type", self.content_type),)))


def with_doctype(body: bytes, doctype: bytes, entity: bytes) -> bytes:
    """``body`` with ``doctype`` after its XML declaration and ``&entity;`` opening its first title (or
    responseDate): a page that is harmless parsed safely and hostile parsed naively."""
    head, sep, rest = body.partition(b"?>\n") if body.startswith(b"<?xml") else (b"", b"", body)
    ref = b"&" + entity + b";"
    for tag in (b"<title>", b"<responseDate>"):
        if tag in rest:
            rest = rest.replace(tag, tag + ref, 1)
            break
    return head + sep + doctype + b"\n" + rest


def billion_laughs(levels: int = 9) -> bytes:
    """The classic entity bomb: ``lolN`` expands to 10**N ``lol``s."""
    lines = [b'<!ENTITY lol0 "lol">']
    lines += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">'.encode() for i in range(1, levels + 1)]
    return b"<!DOCTYPE OAI-PMH [\n " + b"\n ".join(lines) + b"\n]>"


@dataclass(frozen=True)
class BillionLaughs(Fault):
    """A normal page carrying an entity-expansion bomb (``&lol9;`` in the first title)."""

    levels: int = 9
    name: ClassVar[str] = "billion_laughs"

    def respond(self, ex: Exchange) -> None:
        base = ex.base()
        body = with_doctype(base.body, billion_laughs(self.levels), f"lol{self.levels}".encode())
        ex.send(Response(200, body, base.headers))


@dataclass(frozen=True)
class ExternalEntity(Fault):
    """A normal page whose first title references ``<!ENTITY xxe SYSTEM "file:///etc/passwd">``."""

    url: str = "file:///etc/passwd"
    name: ClassVar[str] = "external_entity"

    def respond(self, ex: Exchange) -> None:
        base = ex.base()
        doctype = f'<!DOCTYPE OAI-PMH [\n <!ENTITY xxe SYSTEM "{self.url}">\n]>'.encode()
        ex.send(Response(200, with_doctype(base.body, doctype, b"xxe"), base.headers))


# Names usable as keys of ``FaultPlan.random(rates=…)``; short Retry-After values keep suites fast.
NAMED: dict[str, Callable[[], Fault]] = {
    "http_503": lambda: HTTPStatus.arxiv_503(retry_after=1),
    "http_429": lambda: HTTPStatus(429, retry_after=1),
    "http_500": lambda: HTTPStatus(500),
    "http_502": lambda: HTTPStatus(502),
    "drop": DropConnection,
    "reset": ResetMidBody,
    "truncated": TruncatedXML,
    "slow": lambda: Slow(0.5),
    "bad_resumption_token": BadResumptionToken,
    "html": HTMLPage,
    "billion_laughs": BillionLaughs,
    "external_entity": ExternalEntity,
}


@dataclass
class FaultPlan:
    """Which future request gets which fault. Precedence: ``at`` > ``next_with_token`` > ``next`` >
    ``always`` > ``random``. Request numbers count every request the server received, from 1."""

    _at: dict[int, Fault] = field(default_factory=dict)
    _next: list[Fault] = field(default_factory=list)
    _token: list[Fault] = field(default_factory=list)
    _always: Fault | None = None
    _rng: _random.Random | None = None
    _rates: list[tuple[float, Fault]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def at(self, number: int, fault: Fault) -> None:
        with self._lock:
            self._at[number] = fault

    def next(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._next.extend([fault] * times)

    def next_with_token(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._token.extend([fault] * times)

    def always(self, fault: Fault | None) -> None:
        """Every request gets ``fault`` (None stops it); e.g. to exhaust a client's retries."""
        with self._lock:
            self._always = fault

    def random(self, seed: int, rates: Mapping[Fault | str, float]) -> None:
        """Each request draws once from ``Random(seed)``: fault k with probability ``rates[k]``."""
        faults = [(p, NAMED[k]() if isinstance(k, str) else k) for k, p in rates.items()]
        if sum(p for p, _ in faults) > 1:
            raise ValueError("fault rates add up to more than 1")
        with self._lock:
            self._rng, self._rates = _random.Random(seed), faults

    def clear(self) -> None:
        with self._lock:
            self._at.clear()
            self._next.clear()
            self._token.clear()
            self._always, self._rng, self._rates = None, None, []

    def pick(self, number: int, has_token: bool) -> Fault | None:
        """The fault for request ``number`` (consumed), or None. Called by the server, once per request."""
        with self._lock:
            draw = self._rng.random() if self._rng is not None else None  # one draw per request: reproducible
            if number in self._at:
                return self._at.pop(number)
            if has_token and self._token:
                return self._token.pop(0)
            if self._next:
                return self._next.pop(0)
            if self._always is not None:
                return self._always
            if draw is not None:
                for rate, fault in self._rates:
                    if draw < rate:
                        return fault
                    draw -= rate
            return None

    @property
    def pending(self) -> dict[str, object]:
        """What is still scheduled (for assertions and debugging)."""
        with self._lock:
            return {
                "at": {n: f.name for n, f in sorted(self._at.items())},
                "next": [f.name for f in self._next],
                "next_with_token": [f.name for f in self._token],
                "always": self._always.name if self._always else None,
                "random": [(r, f.name) for r, f in self._rates],
            }
