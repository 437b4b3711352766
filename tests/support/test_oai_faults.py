"""Every fault the OAI test server injects really happens, on the request it was scheduled for."""

from __future__ import annotations

import contextlib
import time
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from lxml import etree

from support.oai_client import ARXIV, OAI, get, oai_error, strict_parse
from support.oai_faults import ARXIV_503_BODY, NAMED, FaultPlan, truncate_in_record
from support.oai_server import (
    BadResumptionToken,
    BillionLaughs,
    DropConnection,
    ExternalEntity,
    HTMLPage,
    HTTPStatus,
    OAIServer,
    ResetMidBody,
    Response,
    Slow,
    TruncatedXML,
)
from support.papers import synthetic_papers

PAPERS = synthetic_papers(60, seed=21)
FIRST = {"verb": "ListRecords", "metadataPrefix": "arXiv"}


@pytest.fixture
def server() -> OAIServer:
    with OAIServer(PAPERS, page_size=20) as srv:
        yield srv  # type: ignore[misc]
    assert srv.errors == []  # no server-side bug hid behind a fault


def test_at_request_number_arxiv_503_then_normal(server: OAIServer) -> None:
    server.faults.at(2, HTTPStatus.arxiv_503())
    assert get(server.url, **FIRST).status_code == 200
    busy = get(server.url, **FIRST)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
    assert busy.content == ARXIV_503_BODY and busy.headers["Content-Type"] == "text/html"
    assert busy.headers["Connection"] == "close" and busy.headers["Content-Length"] == "60"  # as recorded
    assert get(server.url, **FIRST).status_code == 200
    assert [(r.number, r.status, r.fault) for r in server.requests] == [
        (1, 200, None),
        (2, 503, "http_503"),
        (3, 200, None),
    ]


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (HTTPStatus(429, retry_after=3), 429, "3"),
        (HTTPStatus(503, retry_after="Wed, 21 Oct 2026 07:28:00 GMT"), 503, "Wed, 21 Oct 2026 07:28:00 GMT"),
        (HTTPStatus(500), 500, None),
        (HTTPStatus(502, body=b"<html>Bad Gateway</html>"), 502, None),
    ],
)
def test_http_status_faults(server: OAIServer, fault: HTTPStatus, status: int, retry_after: str | None) -> None:
    server.faults.next(fault)
    resp = get(server.url, **FIRST)
    assert resp.status_code == status and resp.headers.get("Retry-After") == retry_after
    assert resp.content == fault.body
    if retry_after and not retry_after.isdigit():
        assert parsedate_to_datetime(retry_after).year == 2026  # an HTTP-date a client must parse, not crash on
    assert server.requests[-1].fault == f"http_{status}" and server.requests[-1].status == status


def test_http_date_retry_after_can_be_built_from_a_clock(server: OAIServer) -> None:
    when = format_datetime(parsedate_to_datetime("Sat, 21 Nov 2026 12:00:05 GMT"), usegmt=True)
    server.faults.next(HTTPStatus.arxiv_503(retry_after=when))
    resp = get(server.url, **FIRST)
    assert resp.headers["Retry-After"] == "Sat, 21 Nov 2026 12:00:05 GMT" and b"Retry after" in resp.content


def test_dropped_connection_sends_nothing(server: OAIServer) -> None:
    server.faults.next(DropConnection())
    with pytest.raises(requests.ConnectionError):
        get(server.url, **FIRST)
    assert server.requests[-1].fault == "drop" and server.requests[-1].status is None
    assert get(server.url, **FIRST).status_code == 200  # the server lives on


def test_reset_mid_body_makes_requests_raise(server: OAIServer) -> None:
    server.faults.next(ResetMidBody(fraction=0.3))
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        get(server.url, **FIRST).content  # noqa: B018
    entry = server.requests[-1]
    assert entry.fault == "reset" and entry.status == 200 and entry.records == 20  # headers were sent


def test_truncated_page_is_valid_http_but_broken_xml(server: OAIServer) -> None:
    server.faults.next(TruncatedXML())
    resp = get(server.url, **FIRST)
    assert resp.status_code == 200 and int(resp.headers["Content-Length"]) == len(resp.content)
    assert resp.content.count(b"<record>") > resp.content.count(b"</record>")  # stops inside a record
    with pytest.raises(etree.XMLSyntaxError):
        strict_parse(resp.content)
    # what sickle does: its recovering parser "repairs" the page into fewer records, silently
    repaired = etree.fromstring(resp.content, etree.XMLParser(recover=True, resolve_entities=False))
    assert 0 < len(repaired.findall(f".//{OAI}record")) <= 20
    assert truncate_in_record(b"<a>no records here</a>", 0.5) == b"<a>no recor"


def test_slow_response_trips_a_client_timeout_and_then_answers(server: OAIServer) -> None:
    server.faults.next(Slow(5.0))  # far longer than the timeout: a busy host cannot blur the two
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.get(server.url, params=FIRST, timeout=0.3)
    assert time.monotonic() - started < 4.0  # the client gave up; the server would still be sleeping
    server.faults.next(Slow(0.3))
    started = time.monotonic()
    assert get(server.url, **FIRST).status_code == 200 and time.monotonic() - started >= 0.3
    assert [r.fault for r in server.requests] == ["slow", "slow"]


def test_bad_resumption_token_fault_and_next_with_token(server: OAIServer) -> None:
    server.faults.next_with_token(BadResumptionToken())
    first = strict_parse(get(server.url, **FIRST).content)  # no token: not affected
    token = first.findtext(f".//{OAI}resumptionToken") or ""
    root = strict_parse(get(server.url, verb="ListRecords", resumptionToken=token).content)
    assert oai_error(root) == "badResumptionToken"
    assert root.find(f"{OAI}request").get("resumptionToken") == token  # type: ignore[union-attr]
    assert oai_error(strict_parse(get(server.url, verb="ListRecords", resumptionToken=token).content)) is None
    assert [r.fault for r in server.requests] == [None, "bad_resumption_token", None]


def test_html_instead_of_xml(server: OAIServer) -> None:
    server.faults.next(HTMLPage())
    resp = get(server.url, **FIRST)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert strict_parse(resp.content).tag == "html"  # parses, but it is no OAI-PMH document


def test_billion_laughs_is_refused_and_never_expanded(server: OAIServer) -> None:
    server.faults.next(BillionLaughs())
    body = get(server.url, **FIRST).content
    assert b"<!ENTITY lol9" in body and b"<title>&lol9;" in body and len(body) < 200_000
    with pytest.raises(etree.XMLSyntaxError, match="amplification"):
        strict_parse(body)  # libxml2 refuses the bomb even with entity resolution off
    recovered = etree.fromstring(body, etree.XMLParser(recover=True, resolve_entities=False))
    assert recovered is None or b"lollollol" not in etree.tostring(recovered)


def test_external_entity_page_is_hostile_only_to_a_resolving_parser(server: OAIServer) -> None:
    server.faults.next(ExternalEntity())
    body = get(server.url, **FIRST).content
    safe = strict_parse(body)
    title = safe.find(f".//{ARXIV}title")
    assert title is not None and "root:" not in "".join(title.itertext())
    if Path("/etc/passwd").exists():  # prove the payload is real: a careless parser leaks the file
        leaky = etree.fromstring(body, etree.XMLParser(resolve_entities=True, no_network=True))
        assert "root:" in "".join(leaky.find(f".//{ARXIV}title").itertext())  # type: ignore[union-attr]


def test_always_exhausts_retries_until_cleared(server: OAIServer) -> None:
    server.faults.always(HTTPStatus(503, retry_after=1))
    assert [get(server.url, **FIRST).status_code for _ in range(4)] == [503] * 4
    server.faults.always(None)
    assert get(server.url, **FIRST).status_code == 200
    server.clear_log()
    server.faults.at(server.request_count + 2, HTTPStatus(500))  # numbers keep counting across clear_log
    assert [get(server.url, **FIRST).status_code for _ in range(3)] == [200, 500, 200]
    assert [r.number for r in server.requests] == [6, 7, 8]


def test_precedence_and_pending() -> None:
    plan = FaultPlan()
    plan.always(HTTPStatus(500))
    plan.next(DropConnection())
    plan.next_with_token(TruncatedXML())
    plan.at(3, HTMLPage())
    assert plan.pending["at"] == {3: "html"} and plan.pending["next"] == ["drop"]
    picks = [plan.pick(1, True), plan.pick(2, True), plan.pick(3, True), plan.pick(4, False)]
    assert [f.name if f else None for f in picks] == ["truncated", "drop", "html", "http_500"]
    plan.clear()
    assert plan.pick(5, True) is None
    with pytest.raises(ValueError, match="more than 1"):
        plan.random(seed=1, rates={"drop": 0.7, "http_503": 0.5})


def test_random_mode_is_seeded_and_reproducible() -> None:
    rates: dict[object, float] = {"http_503": 0.2, "truncated": 0.1, "drop": 0.1, HTTPStatus(502): 0.1}
    runs = []
    for _ in range(2):
        with OAIServer(PAPERS, page_size=20) as srv:
            srv.faults.random(seed=42, rates=rates)  # type: ignore[arg-type]
            for _ in range(40):
                with contextlib.suppress(requests.RequestException):
                    get(srv.url, **FIRST).content  # noqa: B018
            runs.append([r.fault for r in srv.requests])
            assert srv.errors == []
    assert runs[0] == runs[1] and len(runs[0]) == 40
    faults = [f for f in runs[0] if f]
    assert 8 <= len(faults) <= 32 and {"http_503", "truncated", "drop", "http_502"} >= set(faults)
    assert set(NAMED) >= {"http_503", "http_429", "http_500", "http_502", "drop", "reset", "truncated", "slow"}


def test_faults_apply_on_top_of_scripted_replies() -> None:
    page = Path(__file__).resolve().parents[1] / "fixtures" / "oai" / "arxiv_legacy_ListRecords_arXivRaw_with_token.xml"
    with OAIServer(script=[Response.fixture(page), Response.fixture(page)]) as srv:
        srv.faults.at(1, DropConnection())  # consumes no scripted reply
        srv.faults.at(2, TruncatedXML())
        with pytest.raises(requests.ConnectionError):
            get(srv.url, **FIRST)
        broken = get(srv.url, **FIRST).content
        assert page.read_bytes().startswith(broken) and len(broken) < len(page.read_bytes())
        assert get(srv.url, **FIRST).content == page.read_bytes()


def test_a_numbered_fault_hits_that_page_and_a_retry_of_the_same_token_resumes() -> None:
    with OAIServer(PAPERS, page_size=20) as srv:
        srv.faults.at(2, HTTPStatus(503, retry_after=1))
        with requests.Session() as session:
            first = strict_parse(get(srv.url, session, **FIRST).content)
            token = first.findtext(f".//{OAI}resumptionToken") or ""
            assert get(srv.url, session, verb="ListRecords", resumptionToken=token).status_code == 503
            ids = [e.text for e in first.iter(f"{OAI}identifier")]
            while token:  # the retry of the failed page, then the rest
                page = strict_parse(get(srv.url, session, verb="ListRecords", resumptionToken=token).content)
                ids += [e.text for e in page.iter(f"{OAI}identifier")]
                token = page.findtext(f".//{OAI}resumptionToken") or ""
        assert sorted(ids) == sorted(p.oai_identifier for p in PAPERS)  # every record once, none lost
        assert [r.status for r in srv.requests] == [200, 503, 200, 200]
