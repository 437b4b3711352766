"""OAI-PMH 2.0 the way arXiv speaks it, as values: (request params, papers) → HTTP response bytes.

No sockets here (``oai_server`` adds them). Records are served in (datestamp, id) order; resumption tokens
are arXiv's current opaque, URL-quoted query strings with a ``skip`` restart point, or legacy ``N|cursor``.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode

from support.oai_records import FORMATS, GROUPS, OAI_ID_PREFIX, PHYSICS_ARCHIVES, Paper, escape, header_bytes
from support.oai_records import record_bytes as _record_bytes

TokenStyle = Literal["current", "legacy"]
FinalToken = Literal["auto", "empty", "omit"]
EARLIEST = date(2005, 9, 16)  # the current endpoint's earliestDatestamp; `from` before it is a badArgument
OAI_OPEN = (
    '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">'
)
VERBS = ("Identify", "ListRecords", "ListIdentifiers", "GetRecord", "ListMetadataFormats", "ListSets")
_LIST_ARGS = ("metadataPrefix", "from", "until", "set")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SUBJECT = re.compile(r"^[A-Za-z-]+$")
_LEGACY_TOKEN = re.compile(r"^(\d+)\|(\d+)$")


@dataclass(frozen=True)
class Response:
    """One HTTP response; the server adds Content-Length, Date and Server."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/xml"),)

    @classmethod
    def fixture(cls, path: str | Path, status: int = 200, content_type: str = "text/xml") -> Response:
        """A recorded response file served verbatim (arXiv sends ``text/xml`` with no charset)."""
        return cls(status, Path(path).read_bytes(), (("Content-Type", content_type),))


@dataclass(frozen=True)
class Reply:
    response: Response
    verb: str | None
    oai_error: str | None = None
    records: int = 0


class OAIError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_day(name: str, value: str) -> date:
    if not _DAY.match(value):
        raise OAIError("badArgument", f"{name} {value!r} is not a date of the repository's granularity YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise OAIError("badArgument", f"{name} {value!r} is not a valid date") from None


def known_set(spec: str) -> bool:
    """Whether arXiv has this set: a group, ``physics:<archive>``, or ``group:archive:SUBJECT``."""
    parts = spec.split(":")
    if parts[0] not in GROUPS or len(parts) > 3:
        return False
    if len(parts) == 1:
        return True
    archive_ok = parts[1] in PHYSICS_ARCHIVES if parts[0] == "physics" else parts[1] == parts[0]
    return archive_ok and (len(parts) == 2 or bool(_SUBJECT.match(parts[2])))


class _Index:
    """Papers in (datestamp, id) order, one per id (the last in the list wins), with cached selections."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.source = list(papers)
        self.by_id = {p.id: p for p in self.source}
        self.ordered = sorted(self.by_id.values(), key=lambda p: (p.datestamp, p.id))
        self.dates = [p.datestamp for p in self.ordered]
        self.selections: dict[tuple[date | None, date | None, str | None], list[Paper]] = {}

    def same(self, papers: Sequence[Paper]) -> bool:
        # list == list is a C loop that short-cuts on identity (papers are immutable): ~0.5 ms at 100k
        return (papers if isinstance(papers, list) else list(papers)) == self.source

    def select(self, start: date | None, until: date | None, set_spec: str | None) -> list[Paper]:
        key = (start, until, set_spec)
        selected = self.selections.get(key)
        if selected is None:
            lo = bisect_left(self.dates, start) if start else 0
            hi = bisect_right(self.dates, until) if until else len(self.dates)
            selected = self.ordered[lo:hi]
            if set_spec:
                selected = [p for p in selected if p.in_set(set_spec)]
            if len(self.selections) > 64:
                self.selections.clear()
            self.selections[key] = selected
        return selected


class Repository:
    """The OAI-PMH verbs over a list of papers. Thread-safe; ``handle`` is the only entry point."""

    def __init__(
        self,
        base_url: str,
        *,
        token_style: TokenStyle = "current",
        final_token: FinalToken = "auto",
        earliest: date = EARLIEST,
        content_type: str = "text/xml",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url
        self.token_style = token_style
        self.final_token = final_token
        self.earliest = earliest
        self.content_type = content_type
        self.clock = clock
        self._lock = threading.Lock()
        self._index = _Index(())
        self._issued: set[str] = set()
        self._expired: set[str] = set()
        self._legacy_queries: dict[int, dict[str, str]] = {}
        self._next_query = 726959  # legacy tokens looked like "726959|1001"
        # ids ListRecords silently leaves out while ListIdentifiers and GetRecord still have them (the
        # incomplete harvest the audit exists to catch)
        self.hidden_from_list_records: frozenset[str] = frozenset()

    def expire_tokens(self) -> None:
        """Every token issued so far becomes a badResumptionToken (as after arXiv's daily expiry)."""
        with self._lock:
            self._expired |= self._issued
            self._issued.clear()
            self._legacy_queries.clear()

    def index(self, papers: Sequence[Paper]) -> _Index:
        with self._lock:
            if not self._index.same(papers):
                self._index = _Index(papers)
            return self._index

    def handle(self, params: Mapping[str, Sequence[str]], papers: Sequence[Paper], page_size: int) -> Reply:
        verbs = params.get("verb", [])
        verb = verbs[0] if len(verbs) == 1 else None
        flat = {k: v[0] for k, v in params.items() if len(v) == 1}
        try:
            if verb not in VERBS:
                raise OAIError("badVerb", "Illegal verb, missing verb, or repeated verb")
            repeated = sorted(k for k, v in params.items() if len(v) != 1)
            if repeated:
                raise OAIError("badArgument", f"repeated argument(s): {', '.join(repeated)}")
            if verb in ("ListRecords", "ListIdentifiers"):
                return self._list(verb, flat, self.index(papers), page_size)
            if verb == "GetRecord":
                return self._get_record(flat, self.index(papers))
            self._only(flat, set())
            inner = {"Identify": self._identify, "ListMetadataFormats": self._formats, "ListSets": self._sets}[verb]()
            return Reply(self._envelope(verb, flat, inner.encode()), verb)
        except OAIError as err:
            return Reply(self.error(err.code, err.message, flat), verb, err.code)

    def error(self, code: str, message: str, attrs: Mapping[str, str]) -> Response:
        """An OAI error document (HTTP 200, as arXiv and the spec do); ``attrs`` are the request's."""
        attrs = {} if code in ("badVerb", "badArgument") else attrs  # OAI-PMH 3.6: no attributes then
        return self._envelope(None, attrs, f'<error code="{code}">{escape(message)}</error>\n'.encode())

    # -- verbs ---------------------------------------------------------------------------------------------

    @staticmethod
    def _only(flat: Mapping[str, str], allowed: set[str]) -> None:
        extra = sorted(set(flat) - allowed - {"verb"})
        if extra:
            raise OAIError("badArgument", f"illegal argument(s): {', '.join(extra)}")

    def _list(self, verb: str, flat: dict[str, str], index: _Index, page_size: int) -> Reply:
        token = flat.get("resumptionToken")
        if token is not None:
            self._only(flat, {"resumptionToken"})  # the token is exclusive
            args, skip = self._decode(verb, token)
        else:
            self._only(flat, set(_LIST_ARGS))
            args, skip = {k: flat[k] for k in _LIST_ARGS if k in flat}, 0
        try:
            prefix, start, until, set_spec = self._query(args)
        except OAIError as err:
            if token is None:
                raise
            raise OAIError("badResumptionToken", f"The resumptionToken encodes a bad request: {err.message}") from None
        selected = index.select(start, until, set_spec)
        hidden = self.hidden_from_list_records
        if hidden and verb == "ListRecords":
            selected = [p for p in selected if p.id not in hidden]
        if token is not None and skip >= len(selected):
            raise OAIError("badResumptionToken", "The resumptionToken points past the end of the list")
        if not selected:
            raise OAIError("noRecordsMatch", "No records match the given criteria")
        page = selected[skip : skip + page_size]
        more = skip + len(page) < len(selected)
        render = header_bytes if verb == "ListIdentifiers" else (lambda p: _record_bytes(p, prefix))
        token_xml = self._token(verb, args, skip, len(page), len(selected), more)
        inner = b"\n".join(map(render, page)) + b"\n" + token_xml.encode()
        return Reply(self._envelope(verb, flat, inner), verb, None, len(page))

    def _query(self, args: Mapping[str, str]) -> tuple[str, date | None, date | None, str | None]:
        """Validated (metadataPrefix, from, until, set) of a list request."""
        prefix = args.get("metadataPrefix")
        if prefix is None:
            raise OAIError("badArgument", "metadataPrefix is required")
        if prefix not in FORMATS:
            raise OAIError("cannotDisseminateFormat", f"{prefix!r} is not a metadata format of this repository")
        start = _parse_day("from", args["from"]) if "from" in args else None
        until = _parse_day("until", args["until"]) if "until" in args else None
        if start and start < self.earliest:
            raise OAIError("badArgument", f"from {start} is before earliestDatestamp {self.earliest}")
        if start and until and start > until:
            raise OAIError("badArgument", f"from {start} is after until {until}")
        set_spec = args.get("set")
        if set_spec is not None and not known_set(set_spec):
            raise OAIError("badArgument", f"Set {set_spec!r} does not exist")
        return prefix, start, until, set_spec

    def _get_record(self, flat: dict[str, str], index: _Index) -> Reply:
        self._only(flat, {"identifier", "metadataPrefix"})
        if "identifier" not in flat or "metadataPrefix" not in flat:
            raise OAIError("badArgument", "GetRecord needs identifier and metadataPrefix")
        prefix = flat["metadataPrefix"]
        if prefix not in FORMATS:
            raise OAIError("cannotDisseminateFormat", f"{prefix!r} is not a metadata format of this repository")
        identifier = flat["identifier"]
        paper = index.by_id.get(identifier[len(OAI_ID_PREFIX) :]) if identifier.startswith(OAI_ID_PREFIX) else None
        if paper is None:
            raise OAIError("idDoesNotExist", f"{identifier!r} is unknown or illegal in this repository")
        return Reply(self._envelope("GetRecord", flat, _record_bytes(paper, prefix) + b"\n"), "GetRecord", None, 1)

    def _identify(self) -> str:
        return (
            f"<repositoryName>arXiv</repositoryName>\n<baseURL>{escape(self.base_url)}</baseURL>\n"
            "<protocolVersion>2.0</protocolVersion>\n<adminEmail>help@arxiv.org</adminEmail>\n"
            f"<earliestDatestamp>{self.earliest.isoformat()}</earliestDatestamp>\n"
            "<deletedRecord>persistent</deletedRecord>\n<granularity>YYYY-MM-DD</granularity>\n"
        )

    @staticmethod
    def _formats() -> str:
        return "".join(
            f"<metadataFormat><metadataPrefix>{name}</metadataPrefix>"
            f"<schema>http://arxiv.org/OAI/{name}.xsd</schema>"
            f"<metadataNamespace>http://arxiv.org/OAI/{name}/</metadataNamespace></metadataFormat>\n"
            for name in FORMATS
        )

    @staticmethod
    def _sets() -> str:
        specs = [*GROUPS, *(f"physics:{a}" for a in PHYSICS_ARCHIVES)]
        return "".join(f"<set><setSpec>{s}</setSpec><setName>{s}</setName></set>\n" for s in specs)

    # -- tokens and envelope ------------------------------------------------------------------------------

    def _token(self, verb: str, args: dict[str, str], skip: int, count: int, total: int, more: bool) -> str:
        if not more:
            want = self.final_token if self.final_token != "auto" else ("empty" if skip > 0 else "omit")
            if want == "omit":
                return ""
            if self.token_style == "legacy":
                return f'<resumptionToken cursor="{skip}" completeListSize="{total}"/>\n'
            return "<resumptionToken/>\n"
        nxt = skip + count
        with self._lock:
            if self.token_style == "legacy":
                self._next_query += 1
                self._legacy_queries[self._next_query] = args
                token = f"{self._next_query}|{nxt + 1}"
            else:
                token = quote(urlencode({"verb": verb, **args, "skip": nxt}))
            self._issued.add(token)
            self._expired.discard(token)  # the same restart point issued afresh is valid again
        if self.token_style == "legacy":
            return f'<resumptionToken cursor="{skip}" completeListSize="{total}">{escape(token)}</resumptionToken>\n'
        midnight = (self.clock() + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")  # expiry: next 00:00 UTC
        return f"<resumptionToken expirationDate='{midnight}'>{escape(token)}</resumptionToken>\n"

    def _decode(self, verb: str, token: str) -> tuple[dict[str, str], int]:
        bad = OAIError("badResumptionToken", "The resumptionToken supplied is illegal for this repository")
        with self._lock:
            if token in self._expired:
                raise OAIError("badResumptionToken", "The resumptionToken has expired")
            if self.token_style == "legacy":
                match = _LEGACY_TOKEN.match(token)
                args = self._legacy_queries.get(int(match.group(1))) if match else None
                if match is None or args is None or int(match.group(2)) < 1:
                    raise bad
                return dict(args), int(match.group(2)) - 1
        try:
            pairs = parse_qsl(unquote(token), keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise bad from None
        args = dict(pairs)
        skip = args.pop("skip", "")
        if len(args) + 1 != len(pairs) or args.pop("verb", None) != verb or not skip.isdigit():
            raise bad
        if set(args) - set(_LIST_ARGS) or "metadataPrefix" not in args:
            raise bad
        return args, int(skip)

    def _envelope(self, element: str | None, attrs: Mapping[str, str], inner: bytes) -> Response:
        """The OAI-PMH document around ``inner``; ``element`` None for an error (no verb element)."""
        ordered = {"verb": attrs["verb"], **attrs} if "verb" in attrs else attrs
        request = "".join(f' {k}="{escape(v)}"' for k, v in ordered.items())
        head = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n{OAI_OPEN}\n'
            f"<responseDate>{self.clock().strftime('%Y-%m-%dT%H:%M:%SZ')}</responseDate>\n"
            f"<request{request}>{escape(self.base_url)}</request>\n"
        ).encode()
        if element is not None:
            inner = f"<{element}>\n".encode() + inner + f"</{element}>\n".encode()
        return Response(200, head + inner + b"</OAI-PMH>\n", (("Content-Type", self.content_type),))
