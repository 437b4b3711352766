"""The OAI test server speaks OAI-PMH like arXiv: exact record bytes, paging, filters, errors, modes."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import unescape

import pytest
import requests

from papersys.store.ids import normalize_id
from support.oai_client import ARXIV, ARXIV_RAW, OAI, ask, get, harvest, oai_error, strict_parse
from support.oai_server import OAIServer, Paper, Response, render_record, set_specs_for
from support.papers import synthetic_papers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oai"
LICENSE = "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"
ARXIV_ORDER = [
    "id", "created", "updated", "authors", "title", "categories", "comments", "proxy", "report-no",
    "msc-class", "acm-class", "journal-ref", "doi", "license", "abstract",
]  # fmt: skip
RAW_ORDER = [
    "id", "submitter", "version", "title", "authors", "categories", "comments", "proxy", "report-no",
    "acm-class", "msc-class", "journal-ref", "doi", "license", "abstract",
]  # fmt: skip


def _recorded(name: str, arxiv_id: str) -> tuple[str, dict[str, str]]:
    """The exact ``<record>`` text for ``arxiv_id`` in a fixture, and its unescaped leaf fields."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    record = next(r for r in re.findall(r"<record>.*?</record>", text, re.S) if f"<id>{arxiv_id}</id>" in r)
    leaves = re.findall(r"<(title|abstract|comments|journal-ref|doi)>(.*?)</\1>", record, re.S)
    fields = {k: unescape(v, {"&quot;": '"'}) for k, v in leaves}
    return record, fields


def _recorded_papers() -> list[tuple[str, str, str, Paper]]:
    out = []
    rec, f = _recorded("arxiv_legacy_GetRecord_arXivRaw.xml", "1302.2146")
    paper = Paper(
        "1302.2146", date(2013, 4, 3), f["title"], f["abstract"],
        [("Berger", "Joshua", ""), ("Perelstein", "Maxim", ""), ("Saelim", "Michael", ""), ("Tanedo", "Philip", "")],
        ["hep-ph", "hep-ex"],
        [("v1", "Fri, 8 Feb 2013 21:00:01 GMT", "853kb"), ("v2", "Tue, 2 Apr 2013 01:50:08 GMT", "849kb")],
        comments=f["comments"], license=LICENSE, submitter="Michael Saelim", source_type="D",
        set_specs=["physics:hep-ex", "physics:hep-ph"],
    )  # fmt: skip
    out.append(("GetRecord arXivRaw", "arXivRaw", rec, paper))
    rec, f = _recorded("arxiv_legacy_ListRecords_arXivRaw_with_token.xml", "0704.0471")
    paper = Paper(
        "0704.0471", date(2014, 11, 18), f["title"], f["abstract"],
        [("Shetty", "D.V.", ""), ("Yennello", "S.J.", ""), ("Souliotis", "G.A.", "")],
        ["nucl-ex", "nucl-th"], [("v1", "Tue, 3 Apr 2007 22:04:11 GMT", "294kb")],
        comments=f["comments"], journal_ref=f["journal-ref"], doi=f["doi"], submitter="Dinesh Shetty",
        authors_raw="D.V. Shetty, S.J. Yennello, and G.A. Souliotis",
    )  # fmt: skip
    out.append(("ListRecords arXivRaw (&quot;, two DOIs)", "arXivRaw", rec, paper))
    rec, f = _recorded("arxiv_legacy_ListRecords_arXiv_after_503.xml", "1412.8544")
    paper = Paper(
        "1412.8544", date(2015, 1, 3), f["title"], f["abstract"], [("Uijlen", "Sander", ""), ("Westerbaan", "Bas", "")],
        ["cs.DM"], [("v1", "Mon, 29 Dec 2014 10:00:00 GMT", "20kb")], comments=f["comments"], proxy="EPTCS",
        journal_ref=f["journal-ref"], doi=f["doi"], license=LICENSE,
        affiliations=[["Radboud Universiteit"], ["Radboud Universiteit"]],
    )  # fmt: skip
    out.append(("ListRecords arXiv (legacy affiliations)", "arXiv", rec, paper))
    rec, f = _recorded("arxiv_legacy_ListRecords_arXiv_after_503.xml", "hep-th/9504118")
    paper = Paper(
        "hep-th/9504118", date(2015, 1, 3), f["title"], f["abstract"], [("Requardt", "M.", "")], ["hep-th"],
        [("v1", "Mon, 24 Apr 1995 12:00:00 GMT", "50kb")], comments=f["comments"], report_no="GOET-TP 101/95",
    )  # fmt: skip
    out.append(("ListRecords arXiv (old-style id)", "arXiv", rec, paper))
    return out


@pytest.mark.parametrize(
    ("what", "prefix", "recorded", "paper"), _recorded_papers(), ids=[c[0] for c in _recorded_papers()]
)
def test_render_record_reproduces_recorded_arxiv_bytes(what: str, prefix: str, recorded: str, paper: Paper) -> None:
    assert render_record(paper, prefix) == recorded, what


def test_set_specs_legacy_and_current() -> None:
    cats = ["cs.LG", "hep-th", "math.AG", "stat.ML", "q-bio.NC", "astro-ph.GA", "cs.AI", "solv-int"]
    assert set_specs_for(cats) == ("cs", "physics:hep-th", "math", "stat", "q-bio", "physics:astro-ph", "physics:nlin")
    assert set_specs_for(cats, "current")[:6] == (
        "cs:cs:LG", "physics:hep-th", "math:math:AG", "stat:stat:ML", "q-bio:q-bio:NC", "physics:astro-ph:GA",
    )  # fmt: skip
    paper = Paper("2401.00001", date(2024, 1, 2), categories=["cs.LG", "stat.ML"])
    assert paper.set_specs == ("cs", "stat")
    assert paper.in_set("cs") and paper.in_set("cs:cs:LG") and paper.in_set("stat:stat")
    assert not paper.in_set("cs:cs:AI") and not paper.in_set("c") and not paper.in_set("math")
    with pytest.raises(ValueError, match="unknown arXiv category"):
        Paper("2401.00002", date(2024, 1, 2), categories=["nonsense.XX"])


def test_paper_defaults_revision_and_deletion() -> None:
    paper = Paper("2401.00001", date(2024, 1, 5))
    assert paper.created == date(2024, 1, 5) and paper.updated is None and paper.submitter == "Jane Doe"
    revised = paper.revised(date(2024, 2, 1), title="New title")
    assert [v[0] for v in revised.versions] == ["v1", "v2"] and revised.updated == date(2024, 2, 1)
    assert revised.title == "New title" and revised.created == paper.created and paper.title != "New title"
    deleted = revised.as_deleted(date(2024, 3, 1))
    xml = render_record(deleted, "arXiv")
    assert '<header status="deleted">' in xml and "<metadata>" not in xml and "2024-03-01" in xml


def test_synthetic_papers_are_reproducible_and_realistic() -> None:
    papers = synthetic_papers(3000, seed=7)
    assert papers == synthetic_papers(3000, seed=7)
    assert [p.id for p in papers] != [p.id for p in synthetic_papers(3000, seed=8)]
    assert len({p.id for p in papers}) == 3000
    assert all(normalize_id(p.id) == p.id for p in papers)
    kinds = Counter("old" if "/" in p.id else len(p.id.split(".")[1]) for p in papers)
    assert kinds["old"] > 30 and kinds[4] > 30 and kinds[5] > 2000, kinds
    assert any("." in p.id.split("/")[0] for p in papers if "/" in p.id)  # math.AG/0101001 style
    assert all(55 <= len(p.title) <= 125 and 750 <= len(p.abstract) <= 1900 for p in papers)
    assert all(p.abstract.startswith("  ") and p.abstract.endswith("\n") for p in papers)
    assert all(p.abstract.count("\n") >= 8 for p in papers)  # hard line breaks, as arXiv sends
    assert {len(p.authors) for p in papers} >= {1, 2, 8} and any(a[2] for p in papers for a in p.authors)
    assert {len(p.categories) for p in papers if "/" not in p.id} == {1, 2, 3, 4}
    assert {len(p.versions) for p in papers} == {1, 2, 3, 4}
    for p in papers:
        assert p.created is not None and p.created <= p.datestamp
        assert p.updated is None or p.created <= p.updated <= p.datestamp
        assert p.versions[0][1].split()[1].isdigit() and len(p.versions[0][1].split()[1]) == 2  # zero-padded day
    specials = [p for p in papers if re.search(r"[$\\&<\"]|[^\x00-\x7f]", p.title + p.abstract)]
    assert 100 < len(specials) < 1000
    assert sum(p.doi is not None for p in papers) > 500 and sum(p.journal_ref is not None for p in papers) > 300


@pytest.mark.parametrize("prefix", ["arXiv", "arXivRaw"])
def test_pages_are_well_formed_schema_shaped_and_round_trip_text(prefix: str) -> None:
    papers = synthetic_papers(400, seed=2, special_fraction=0.5, deleted_fraction=0.05)
    by_id = {p.id: p for p in papers}
    with OAIServer(papers, page_size=150) as server:
        result = harvest(server.url, metadataPrefix=prefix)
    assert len(result.pages) == 3
    ns, order = (ARXIV, ARXIV_ORDER) if prefix == "arXiv" else (ARXIV_RAW, RAW_ORDER)
    for page in result.pages:
        assert page.tag == f"{OAI}OAI-PMH"
        assert [c.tag for c in page] == [f"{OAI}responseDate", f"{OAI}request", f"{OAI}ListRecords"]
        assert datetime.strptime(page.findtext(f"{OAI}responseDate", ""), "%Y-%m-%dT%H:%M:%SZ")
    deleted = 0
    for record in result.records:
        header = record.find(f"{OAI}header")
        paper = by_id[header.findtext(f"{OAI}identifier", "").removeprefix("oai:arXiv.org:")]
        assert [c.tag for c in header][:2] == [f"{OAI}identifier", f"{OAI}datestamp"]
        assert [s.text for s in header.findall(f"{OAI}setSpec")] == list(paper.set_specs)
        if paper.deleted:
            deleted += 1
            assert header.get("status") == "deleted" and record.find(f"{OAI}metadata") is None
            continue
        meta = record.find(f"{OAI}metadata/{ns}{prefix}")
        tags = [c.tag.removeprefix(ns) for c in meta]
        assert tags == sorted(tags, key=order.index)  # xsd order, optional elements left out
        assert meta.findtext(f"{ns}title") == paper.title  # TeX, Unicode, &, <, quotes, line breaks survive
        assert meta.findtext(f"{ns}abstract") == paper.abstract
        assert meta.findtext(f"{ns}categories") == " ".join(paper.categories)
        if prefix == "arXiv":
            got = [
                tuple(a.findtext(f"{ns}{t}") or "" for t in ("keyname", "forenames", "suffix"))
                for a in meta.iter(f"{ns}author")
            ]
            assert got == list(paper.authors)
        else:
            assert [v.get("version") for v in meta.findall(f"{ns}version")] == [v[0] for v in paper.versions]
    assert deleted > 5


@pytest.mark.parametrize("page_size", [7, 64, 250, 1000])
def test_token_paging_returns_every_record_exactly_once_in_order(page_size: int) -> None:
    papers = synthetic_papers(500, seed=4)
    with OAIServer(papers, page_size=page_size) as server:
        result = harvest(server.url, metadataPrefix="arXiv")
        assert server.errors == []
    expected = sorted(papers, key=lambda p: (p.datestamp, p.id))
    assert result.ids == [p.id for p in expected]
    assert len(result.pages) == -(-500 // page_size)
    if page_size >= 500:
        assert result.tokens == [None]  # a list that fits one page has no token at all
        return
    final = result.tokens[-1]
    assert final is not None and not final.text and not final.attrib  # a paged list ends with <resumptionToken/>
    tomorrow = datetime.now(UTC).date().toordinal() + 1
    for token in result.tokens[:-1]:
        assert token is not None and token.text
        assert date.fromisoformat(token.get("expirationDate", "")[:10]).toordinal() == tomorrow
        decoded = parse_qs(unquote(token.text))  # opaque, URL-quoted query string with its restart point
        assert decoded["verb"] == ["ListRecords"] and decoded["metadataPrefix"] == ["arXiv"]
        assert int(decoded["skip"][0]) % page_size == 0


def test_legacy_tokens_and_final_token_styles() -> None:
    papers = synthetic_papers(50, seed=5)
    with OAIServer(papers, page_size=20, token_style="legacy") as server:
        result = harvest(server.url, metadataPrefix="arXivRaw")
    assert len(result.ids) == 50
    attrs = [(t.get("cursor"), t.get("completeListSize"), bool(t.text)) for t in result.tokens if t is not None]
    assert attrs == [("0", "50", True), ("20", "50", True), ("40", "50", False)]
    assert re.fullmatch(r"\d+\|21", result.tokens[0].text or "")
    with OAIServer(papers, page_size=20, final_token="omit") as server:
        assert harvest(server.url, metadataPrefix="arXiv").tokens[-1] is None
    with OAIServer(papers, page_size=100, final_token="empty") as server:
        only = harvest(server.url, metadataPrefix="arXiv").tokens
    assert len(only) == 1 and only[0] is not None and not only[0].text


def test_from_until_and_hierarchical_set_filters() -> None:
    papers = synthetic_papers(600, seed=6, days=20)
    with OAIServer(papers, page_size=90) as server:
        cases = [
            {"from": "2024-01-05", "until": "2024-01-09"},
            {"from": "2024-01-10"},
            {"until": "2024-01-03"},
            {"from": "2024-01-07", "until": "2024-01-07"},
            {"set": "cs"},
            {"set": "physics"},
            {"set": "physics:hep-th"},
            {"set": "cs:cs:LG"},
            {"set": "math", "from": "2024-01-04", "until": "2024-01-15"},
        ]
        for args in cases:
            start = date.fromisoformat(args.get("from", "2000-01-01"))
            until = date.fromisoformat(args.get("until", "2100-01-01"))
            spec = args.get("set")
            want = sorted(
                (p for p in papers if start <= p.datestamp <= until and (spec is None or p.in_set(spec))),
                key=lambda p: (p.datestamp, p.id),
            )
            assert want, args
            assert harvest(server.url, metadataPrefix="arXiv", **args).ids == [p.id for p in want], args
    hep = [p for p in papers if p.in_set("physics:hep-th")]
    assert hep and all("hep-th" in p.categories for p in hep)
    cs_lg = [p for p in papers if p.in_set("cs:cs:LG")]
    assert cs_lg and all("cs.LG" in p.categories for p in cs_lg)


_TOKEN = "verb%253DListRecords%2526metadataPrefix%253DarXiv%2526skip%253D"  # quoted twice: once in the URL


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "badVerb"),
        ("verb=Frobnicate", "badVerb"),
        ("verb=ListRecords&verb=ListRecords&metadataPrefix=arXiv", "badVerb"),
        ("verb=ListRecords&metadataPrefix=arXiv&from=2024-1-01", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&from=2024-02-30", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&from=2024-01-01T00:00:00Z", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&from=2024-01-09&until=2024-01-02", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&from=2001-01-01", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&set=moo", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&set=cs:math", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&frobs=1", "badArgument"),
        ("verb=ListRecords&metadataPrefix=arXiv&from=2024-01-01&from=2024-01-02", "badArgument"),
        ("verb=ListRecords&resumptionToken=x&metadataPrefix=arXiv", "badArgument"),
        ("verb=ListRecords", "badArgument"),
        ("verb=Identify&metadataPrefix=arXiv", "badArgument"),
        ("verb=ListRecords&metadataPrefix=oai_dc", "cannotDisseminateFormat"),
        ("verb=ListRecords&metadataPrefix=marc21", "cannotDisseminateFormat"),
        ("verb=ListRecords&metadataPrefix=arXiv&from=2030-01-01", "noRecordsMatch"),
        ("verb=ListRecords&metadataPrefix=arXiv&set=q-fin:q-fin:TR", "noRecordsMatch"),
        ("verb=ListRecords&resumptionToken=3", "badResumptionToken"),
        ("verb=ListRecords&resumptionToken=verb%253DListRecords%2526skip%253Dx", "badResumptionToken"),
        (f"verb=ListIdentifiers&resumptionToken={_TOKEN}1", "badResumptionToken"),  # another verb's token
        (f"verb=ListRecords&resumptionToken={_TOKEN}999", "badResumptionToken"),  # past the end
        (
            "verb=ListRecords&resumptionToken=metadataPrefix%253DarXiv%2526verb%253DListRecords%2526from%253D2024-13-01%2526skip%253D1",
            "badResumptionToken",
        ),
        ("verb=GetRecord&identifier=oai:arXiv.org:9999.99999&metadataPrefix=arXiv", "idDoesNotExist"),
        ("verb=GetRecord&identifier=oai:arXiv.org:2401.00001", "badArgument"),
    ],
)
def test_errors_are_oai_xml_with_http_200(query: str, code: str) -> None:
    with OAIServer([Paper("2401.00001", date(2024, 1, 2), categories=["cs.LG"])]) as server:
        resp = requests.get(f"{server.url}?{query}", timeout=10)
        root = strict_parse(resp.content)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/xml"
    assert oai_error(root) == code
    request = root.find(f"{OAI}request")
    assert request is not None and request.text == server.url
    if code in ("badVerb", "badArgument"):
        assert request.attrib == {}  # OAI-PMH: no request attributes when the request itself was bad
    else:
        assert request.get("verb") in ("ListRecords", "ListIdentifiers", "GetRecord")


def test_identify_getrecord_listidentifiers_and_utf8_without_charset() -> None:
    title = 'Zürich — 中文 & <b> "q" 🚀 $\\alpha$ \\\'e'
    paper = Paper("2401.99999", date(2024, 1, 3), title=title, categories=["math.AG"])
    with OAIServer([paper, *synthetic_papers(30, seed=9)], page_size=10) as server:
        ident = strict_parse(get(server.url, verb="Identify").content).find(f"{OAI}Identify")
        assert ident is not None and ident.findtext(f"{OAI}baseURL") == server.url
        assert ident.findtext(f"{OAI}granularity") == "YYYY-MM-DD"
        assert ident.findtext(f"{OAI}deletedRecord") == "persistent"
        resp = get(server.url, verb="GetRecord", identifier="oai:arXiv.org:2401.99999", metadataPrefix="arXiv")
        assert "charset" not in resp.headers["Content-Type"]  # as arXiv: decode from the XML declaration
        assert strict_parse(resp.content).findtext(f".//{ARXIV}title") == paper.title
        headers = harvest(server.url, "ListIdentifiers", metadataPrefix="arXivRaw")
        assert len(headers.ids) == 31 and len(headers.pages) == 4 and "2401.99999" in headers.ids
        formats = strict_parse(get(server.url, verb="ListMetadataFormats").content)
        assert [e.text for e in formats.iter(f"{OAI}metadataPrefix")] == ["arXiv", "arXivRaw"]
        sets = strict_parse(get(server.url, verb="ListSets").content)
        assert {"cs", "math", "physics:hep-th"} <= {e.text for e in sets.iter(f"{OAI}setSpec")}
        assert requests.get(server.url.replace("/oai", "/elsewhere"), timeout=5).status_code == 404
        assert requests.post(server.url, data={"verb": "Identify"}, timeout=5).status_code == 200
        assert server.errors == []


def test_papers_change_between_harvests_and_log_records_requests() -> None:
    papers = synthetic_papers(100, seed=10, start=date(2024, 1, 1), days=10)
    with OAIServer(papers, page_size=40) as server:
        assert len(harvest(server.url, metadataPrefix="arXiv").ids) == 100
        first, second = papers[0], papers[1]
        server.upsert(first.revised(date(2024, 2, 1), title="Revised title"))
        server.delete(second.id, date(2024, 2, 2))
        server.upsert(Paper("2402.00001", date(2024, 2, 3)))
        later = harvest(server.url, metadataPrefix="arXiv", **{"from": "2024-02-01"})
        assert later.ids == [first.id, second.id, "2402.00001"]
        assert later.records[0].findtext(f".//{ARXIV}title") == "Revised title"
        assert later.records[1].find(f"{OAI}header").get("status") == "deleted"
        assert len(harvest(server.url, metadataPrefix="arXiv").ids) == 101  # one record per id
        log = server.requests
        assert [r.number for r in log] == list(range(1, 8))
        assert [r.records for r in log] == [40, 40, 20, 3, 40, 40, 21]
        assert all(r.status == 200 and r.fault is None and r.verb == "ListRecords" for r in log)
        assert log[3].params == {"verb": "ListRecords", "metadataPrefix": "arXiv", "from": "2024-02-01"}
        assert "resumptionToken" in log[1].params and log[0].time <= log[-1].time


def test_expire_tokens_invalidates_issued_tokens_until_reissued() -> None:
    with OAIServer(synthetic_papers(30, seed=11), page_size=10) as server:
        token = ask(server.url, verb="ListRecords", metadataPrefix="arXiv").findtext(f".//{OAI}resumptionToken")
        assert token and oai_error(ask(server.url, verb="ListRecords", resumptionToken=token)) is None
        server.expire_tokens()
        assert oai_error(ask(server.url, verb="ListRecords", resumptionToken=token)) == "badResumptionToken"
        assert server.requests[-1].oai_error == "badResumptionToken"
        assert len(harvest(server.url, metadataPrefix="arXiv").ids) == 30  # a restarted list gets fresh tokens
    with OAIServer(synthetic_papers(30, seed=11), page_size=10, token_style="legacy") as server:
        token = ask(server.url, verb="ListRecords", metadataPrefix="arXiv").findtext(f".//{OAI}resumptionToken")
        assert token and oai_error(ask(server.url, verb="ListRecords", resumptionToken=token)) is None
        server.expire_tokens()
        assert oai_error(ask(server.url, verb="ListRecords", resumptionToken=token)) == "badResumptionToken"


def test_scripted_mode_replays_recorded_responses_verbatim() -> None:
    page = FIXTURES / "arxiv_legacy_ListRecords_arXiv_after_503.xml"
    busy = b"<html><body>\n<h1>Retry after 10 seconds</h1>\n</body></html>\n"
    script = [Response(503, busy, (("Content-Type", "text/html"), ("Retry-After", "10"))), Response.fixture(page)]
    with OAIServer(script=script) as server:
        first = get(server.url, verb="ListRecords", metadataPrefix="arXiv", **{"from": "2015-01-01"})
        assert first.status_code == 503 and first.headers["Retry-After"] == "10"
        second = get(server.url, verb="ListRecords", metadataPrefix="arXiv", **{"from": "2015-01-01"})
        assert second.status_code == 200 and second.content == page.read_bytes()
        assert get(server.url, verb="Identify").status_code == 500  # script exhausted
        assert [r.status for r in server.requests] == [503, 200, 500]


def test_runs_as_a_process_printing_its_url_first() -> None:
    script = Path(__file__).with_name("oai_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--papers", "250", "--page-size", "100", "--seed", "3", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/oai", url), url
        result = harvest(url, metadataPrefix="arXiv")
        assert sorted(result.ids) == [p.id for p in synthetic_papers(250, seed=3)]  # same seed ⇒ same papers
        assert len(result.pages) == 3
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
