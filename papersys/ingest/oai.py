"""The one module that talks to sickle: arXiv's OAI-PMH endpoint with spacing, retries and strict XML.

sickle retries nothing and has no timeout by default, and its parser silently "recovers" broken XML. We
keep its paging and OAI error mapping, and replace the HTTP step (``Sickle.harvest``) with our own: a
requests session with timeouts, politeness spacing, retry with backoff on 503/429/5xx, connection errors
and malformed pages, ``Retry-After`` honoured and capped, and a strict parser (no entities, no network).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from lxml import etree
from sickle import Sickle, oaiexceptions
from sickle.iterator import OAIResponseIterator

from papersys.config import IngestConfig
from papersys.errors import HarvestError
from papersys.runtime import Runtime

log = logging.getLogger(__name__)

OAI_NS = "{http://www.openarchives.org/OAI/2.0/}"
# sickle's OAI error classes share no base class
_OAI_ERRORS = (
    oaiexceptions.BadArgument,
    oaiexceptions.BadVerb,
    oaiexceptions.CannotDisseminateFormat,
    oaiexceptions.IdDoesNotExist,
    oaiexceptions.NoSetHierarchy,
    oaiexceptions.NoMetadataFormat,
    oaiexceptions.OAIError,
)
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class BadResumptionToken(Exception):
    """The server rejected a resumption token: the window has to restart from its first page."""


class _MalformedPage(Exception):
    pass


@dataclass(frozen=True)
class _Failure:
    """A request that failed in a way worth retrying."""

    outcome: str  # the label of the requests/retries metrics: timeout, connection_error, malformed, http_503 …
    why: str
    delay: float  # seconds to wait before the next attempt


def _strict_parser() -> etree.XMLParser:
    # no entity expansion, no DTD or network fetches, no silent repair of broken documents
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, recover=False, huge_tree=False, remove_blank_text=True
    )


def parse_page(content: bytes) -> etree._Element:
    """Parse one OAI-PMH response strictly; raise _MalformedPage for anything but a clean OAI document."""
    try:
        root = etree.fromstring(content, parser=_strict_parser())
    except etree.XMLSyntaxError as exc:
        raise _MalformedPage(f"malformed XML ({exc})") from exc
    if root.getroottree().docinfo.internalDTD is not None or root.getroottree().docinfo.externalDTD is not None:
        raise _MalformedPage("document declares a DTD (refused: OAI-PMH responses never need one)")
    if root.tag != f"{OAI_NS}OAI-PMH":
        raise _MalformedPage(f"not an OAI-PMH response (root element {root.tag!r})")
    return root


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header (delta-seconds or HTTP-date) → seconds from ``now``; None if absent/garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Page:
    root: etree._Element
    complete_list_size: int | None


class _Response:
    """Stands in for sickle's OAIResponse, holding the tree we already parsed strictly (parsed once)."""

    def __init__(self, root: etree._Element, params: dict[str, Any]) -> None:
        self.xml = root
        self.params = params


class _ArxivSickle(Sickle):  # type: ignore[misc]  # sickle ships no type hints
    def __init__(self, client: OAIClient) -> None:
        super().__init__(client.cfg.base_url, iterator=OAIResponseIterator, max_retries=0)
        self._client = client

    def harvest(self, **kwargs: Any) -> _Response:
        return _Response(self._client.fetch(kwargs), kwargs)


class OAIClient:
    def __init__(self, cfg: IngestConfig, runtime: Runtime, session: requests.Session | None = None) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = cfg.user_agent
        token = cfg.auth_token.get_secret_value()
        if token:  # for an endpoint behind an authenticating proxy; requests never logs headers
            self.session.headers["Authorization"] = f"Bearer {token}"
        if cfg.url_credentials is not None:
            self.session.auth = cfg.url_credentials
        password = cfg.url_credentials[1] if cfg.url_credentials else ""
        self._secrets = [s for s in (token, password) if s]
        self._last_start: float | None = None
        self.requests = 0
        self.retries = 0

    def _space(self) -> None:
        if self._last_start is not None:
            wait = self._last_start + self.cfg.request_interval_s - self.runtime.monotonic()
            if wait > 0:
                self.runtime.sleep(wait)
        self._last_start = self.runtime.monotonic()

    def _backoff(self, attempt: int) -> float:
        return float(min(self.cfg.backoff_base_s * (2**attempt), self.cfg.max_retry_after_s))

    def fetch(self, params: dict[str, Any]) -> etree._Element:
        """GET one page, retrying what is worth retrying; returns the strictly parsed document."""
        attempt = 0
        while True:
            answer = self._attempt(params, attempt)
            if not isinstance(answer, _Failure):
                return answer
            self._retry_or_give_up(params, attempt, answer)
            attempt += 1

    def _attempt(self, params: dict[str, Any], attempt: int) -> etree._Element | _Failure:
        """One spaced request: the parsed page, a failure worth retrying, or HarvestError."""
        self.runtime.check_cancel()
        self._space()
        self.requests += 1
        try:
            resp = self.session.get(self.cfg.base_url, params=params, timeout=self.cfg.timeout_s)
            content = resp.content  # reading the body can itself fail (reset mid-body)
        except requests.Timeout:
            return _Failure("timeout", f"no answer within {self.cfg.timeout_s:g}s", self._backoff(attempt))
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            return _Failure("connection_error", f"connection failed ({type(exc).__name__})", self._backoff(attempt))
        except requests.RequestException as exc:
            self.runtime.observer.harvest_request("error")
            raise HarvestError(self._describe(params), f"request failed: {self._redact(str(exc))}") from exc
        return self._answer(params, resp, content, attempt)

    def _answer(
        self, params: dict[str, Any], resp: requests.Response, content: bytes, attempt: int
    ) -> etree._Element | _Failure:
        """What an HTTP answer means: the page, a failure worth retrying, or HarvestError (other 4xx)."""
        status = resp.status_code
        if status == 200:
            try:
                root = parse_page(content)
            except _MalformedPage as exc:
                return _Failure("malformed", str(exc), self._backoff(attempt))
            self.runtime.observer.harvest_request("ok")
            return root
        if status in RETRY_STATUS or status >= 500:
            hinted = retry_after_seconds(resp.headers.get("Retry-After"), self.runtime.clock())
            delay = self._backoff(attempt) if hinted is None else hinted
            return _Failure(f"http_{status}", f"HTTP {status}", min(delay, self.cfg.max_retry_after_s))
        self.runtime.observer.harvest_request(f"http_{status}")
        raise HarvestError(self._describe(params), f"HTTP {status} (not retried)")

    def _retry_or_give_up(self, params: dict[str, Any], attempt: int, failure: _Failure) -> None:
        """Count the failed request; wait before the next attempt, or raise HarvestError when none is left."""
        self.runtime.observer.harvest_request(failure.outcome)
        if attempt >= self.cfg.max_retries:
            raise HarvestError(self._describe(params), f"{failure.why}; gave up after {attempt + 1} attempts")
        self.retries += 1
        self.runtime.observer.harvest_retry(failure.outcome)
        log.warning(
            "%s: %s; retry %d/%d in %.1fs",
            self._describe(params),
            failure.why,
            attempt + 1,
            self.cfg.max_retries,
            failure.delay,
        )
        self.runtime.sleep(failure.delay)

    def _redact(self, text: str) -> str:
        """A third-party message with any credential masked (it ends up in logs and jobs.jsonl)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @staticmethod
    def _describe(params: dict[str, Any]) -> str:
        if "resumptionToken" in params:
            return f"{params.get('verb', 'list')} page (token {str(params['resumptionToken'])[:60]})"
        parts = [f"{k}={v}" for k, v in params.items() if k != "verb"]
        return f"{params.get('verb', 'request')} {' '.join(parts)}"

    def pages(
        self,
        *,
        metadata_prefix: str,
        start: date,
        until: date,
        set_spec: str | None,
        verb: str = "ListRecords",
    ) -> Iterator[Page]:
        """Every page of one ListRecords (or ListIdentifiers) list. noRecordsMatch yields nothing; a rejected
        token raises BadResumptionToken; other OAI errors raise HarvestError."""
        params: dict[str, Any] = {
            "metadataPrefix": metadata_prefix,
            "from": start.isoformat(),
            "until": until.isoformat(),
        }
        if set_spec:
            params["set"] = set_spec
        sickle = _ArxivSickle(self)
        try:
            if verb not in ("ListRecords", "ListIdentifiers"):
                raise ValueError(f"not a list verb: {verb}")
            iterator = getattr(sickle, verb)(**params)
            for response in iterator:
                token = response.xml.find(f".//{OAI_NS}resumptionToken")
                size = token.get("completeListSize") if token is not None else None
                yield Page(response.xml, int(size) if size and size.isdigit() else None)
        except oaiexceptions.NoRecordsMatch:
            return
        except oaiexceptions.BadResumptionToken as exc:
            raise BadResumptionToken(str(exc)) from exc
        except _OAI_ERRORS as exc:
            name = type(exc).__name__
            code = name[0].lower() + name[1:]  # sickle's class for OAI error code badArgument is BadArgument
            raise HarvestError(self._describe({"verb": verb, **params}), f"server answered {code}: {exc}") from exc

    def get_record(self, identifier: str, *, metadata_prefix: str) -> etree._Element | None:
        """One GetRecord answer (the whole document), or None when the server says idDoesNotExist."""
        params = {"verb": "GetRecord", "identifier": identifier, "metadataPrefix": metadata_prefix}
        sickle = _ArxivSickle(self)
        try:
            response = sickle.GetRecord(**{k: v for k, v in params.items() if k != "verb"})
        except oaiexceptions.IdDoesNotExist:
            return None
        except _OAI_ERRORS as exc:
            raise HarvestError(self._describe(params), f"server answered {type(exc).__name__}: {exc}") from exc
        root: etree._Element = response.xml
        return root
