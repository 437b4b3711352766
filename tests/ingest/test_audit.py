"""`papersys audit` against a real OAI-PMH server on 127.0.0.1 whose ListRecords silently leaves records out
that its ListIdentifiers lists: exactly those gaps (and a stale datestamp, a deletion) are found and repaired."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from support.expected import expected_row
from support.oai_records import Paper
from support.oai_server import HTTPStatus, OAIServer

from papersys import service
from papersys.config import Config
from papersys.errors import UsageError
from papersys.ingest.audit import GET_RECORD_MAX, AuditRequest, _day_ranges, parse_identifiers
from papersys.ingest.oai import parse_page
from papersys.runtime import Runtime
from papersys.store.atomic import read_json, write_parquet
from papersys.store.jobs import read_jobs
from papersys.store.layout import Layout
from papersys.store.metadata import scan_all

from .conftest import Sleeps, make_config
from .test_ingest_cli import run_main, write_config

FROM, UNTIL = date(2024, 1, 1), date(2024, 2, 29)


def stored(layout: Layout) -> dict[str, dict[str, object]]:
    return {r["id"]: r for r in scan_all(layout).collect().to_dicts()}


def _gapped(server: OAIServer, papers: list[Paper], config: Config, runtime: Runtime) -> dict[str, list[str]]:
    """Harvest while ListRecords leaves three papers out, then revise one paper and delete another upstream:
    the store then lacks 3, holds one stale row and one deleted paper."""
    live = [p for p in papers if not p.deleted]
    hidden = [live[3].id, live[40].id, live[77].id]
    server.hide_from_list_records(*hidden)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert report.new == len(live) - 3  # the harvest itself saw no error: the gap is silent
    stale, gone = live[10], live[20]
    server.upsert(stale.revised(date(2024, 2, 20), title="A revised title"))
    server.delete(gone.id, date(2024, 2, 21))
    return {"missing": sorted(hidden), "stale": [stale.id], "deleted": [gone.id]}


def test_audit_reports_exactly_the_gaps_and_repair_fixes_them(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url)
    layout = Layout(config.data_dir)
    expected = _gapped(server, papers, config, runtime)

    server.clear_log()
    report = service.audit(config, start=FROM, until=UNTIL, runtime=runtime)
    assert {c: list(ids) for c, ids in report.gaps.items()} == expected
    assert not report.clean and report.left == 5 and report.fixed == 0
    assert report.listed == len(papers)
    # counted per listed day: the revision and the deletion are dated as listed
    assert report.days["2024-02-20"] == {"stale": 1} and report.days["2024-02-21"] == {"deleted": 1}
    assert sum(n for by_class in report.days.values() for n in by_class.values()) == 5
    # 120 identifiers at 25 a page: the whole list, through its resumption tokens, and nothing else asked
    assert [r.verb for r in server.requests] == ["ListIdentifiers"] * 5
    assert sum("resumptionToken" in r.params for r in server.requests) == 4
    saved = read_json(layout.audit_state)
    assert saved["gaps"] == expected and saved["clean"] is False and saved["from"] == "2024-01-01"

    server.clear_log()
    repaired = service.audit(config, start=FROM, until=UNTIL, repair=True, runtime=runtime)
    assert repaired.clean and repaired.fixed == 5 and repaired.fetched_get_record == 4
    assert sorted(r.verb or "" for r in server.requests).count("GetRecord") == 4  # missing 3 + stale 1
    rows = stored(layout)
    upstream = {p.id: p for p in server.papers}
    for arxiv_id in [*expected["missing"], *expected["stale"]]:
        assert rows[arxiv_id] == expected_row(upstream[arxiv_id]), arxiv_id
    assert expected["deleted"][0] not in rows

    again = service.audit(config, start=FROM, until=UNTIL, runtime=runtime)
    assert again.clean and again.found == 0
    assert read_json(layout.audit_state)["clean"] is True
    jobs = read_jobs(layout.jobs_log)
    assert [j["job"] for j in jobs] == ["ingest", "audit", "audit", "audit"]
    assert jobs[2]["counts"]["fixed"] == 5 and jobs[2]["counts"]["remaining"] == 0


def test_many_gaps_are_repaired_with_listrecords_over_their_days(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url)
    layout = Layout(config.data_dir)
    service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    # lose 30 rows from the store (more than GetRecord is used for)
    lost: list[str] = []
    for year in layout.metadata_years():
        frame = pl.read_parquet(layout.metadata_file(year))
        dropped = frame["id"].head(GET_RECORD_MAX + 10 - len(lost)).to_list()
        lost += dropped
        write_parquet(frame.filter(~pl.col("id").is_in(dropped)), layout.metadata_file(year))
    before = {p.id for p in papers if p.id in lost}
    assert len(before) == GET_RECORD_MAX + 10

    server.clear_log()
    report = service.audit(config, start=FROM, until=UNTIL, repair=True, runtime=runtime)
    assert set(report.gaps["missing"]) == before and report.clean and report.fixed == len(before)
    assert report.fetched_get_record == 0 and report.fetched_days > 0
    verbs = {r.verb for r in server.requests}
    assert verbs == {"ListIdentifiers", "ListRecords"}
    rows = stored(layout)
    for paper in papers:
        assert rows[paper.id] == expected_row(paper), paper.id


def test_audit_waits_out_a_503_with_retry_after(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime, sleeps: Sleeps
) -> None:
    config = make_config(tmp_path, server.url)
    service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    server.faults.at(server.request_count + 3, HTTPStatus.arxiv_503(retry_after=7))
    sleeps.calls.clear()
    report = service.audit(config, start=FROM, until=UNTIL, runtime=runtime)
    assert report.clean and report.listed == len(papers)
    assert report.retries == 1 and 7.0 in sleeps.calls
    assert [r.status for r in server.requests[-6:]] == [200, 200, 503, 200, 200, 200]


def test_default_range_is_the_last_audit_days() -> None:
    cfg = make_config(Path("/tmp"), "http://127.0.0.1:1/oai", audit_days=7).ingest
    request = AuditRequest.build(cfg, today=date(2024, 3, 1))
    assert (request.start, request.until, request.sets) == (date(2024, 2, 24), date(2024, 3, 1), (None,))
    with pytest.raises(UsageError, match="is after"):
        AuditRequest.build(cfg, today=date(2024, 3, 1), start=date(2024, 3, 2), until=date(2024, 3, 1))
    with pytest.raises(UsageError, match="not an arXiv set spec"):
        AuditRequest.build(cfg, today=date(2024, 3, 1), sets=["CS!"])


def test_day_ranges_join_consecutive_days() -> None:
    days = [date(2024, 1, 3), date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 9), date(2024, 1, 3)]
    assert _day_ranges(days) == [(date(2024, 1, 1), date(2024, 1, 3)), (date(2024, 1, 9), date(2024, 1, 9))]


def test_parse_identifiers_on_a_recorded_page_shape() -> None:
    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListIdentifiers>'
        b"<header><identifier>oai:arXiv.org:2401.00001</identifier><datestamp>2024-01-02</datestamp>"
        b"<setSpec>cs:cs:LG</setSpec></header>"
        b'<header status="deleted"><identifier>oai:arXiv.org:hep-th/9901001</identifier>'
        b"<datestamp>2024-01-03</datestamp><setSpec>physics:hep-th</setSpec></header>"
        b"<header><identifier>oai:arXiv.org:not-an-id</identifier><datestamp>2024-01-03</datestamp></header>"
        b"<header><identifier>oai:arXiv.org:2401.00002</identifier><datestamp>2024-01-04</datestamp>"
        b"<setSpec>math:math:AG</setSpec></header>"
        b"</ListIdentifiers></OAI-PMH>"
    )
    frame = parse_identifiers(parse_page(page))
    assert frame.rows() == [
        ("2401.00001", date(2024, 1, 2), False),
        ("hep-th/9901001", date(2024, 1, 3), True),
        ("2401.00002", date(2024, 1, 4), False),
    ]
    # under ingest.categories = ["cs.LG", "hep-th"], the math paper cannot be in the store: not audited
    only = parse_identifiers(parse_page(page), frozenset({"cs.LG", "hep-th"}))
    assert only["id"].to_list() == ["2401.00001", "hep-th/9901001"]


def test_cli_audit_exit_status_and_json(tmp_path: Path, server: OAIServer, papers: list[Paper]) -> None:
    config = write_config(tmp_path, server.url)
    args = ["--config", str(config)]
    assert run_main(*args, "ingest", "--from", "2024-01-01", "--until", "2024-02-29").returncode == 0
    clean = run_main(*args, "audit", "--from", "2024-01-01", "--until", "2024-02-29")
    assert clean.returncode == 0, clean.stderr
    assert "0 missing, 0 stale, 0 deleted" in clean.stdout and "clean" in clean.stdout
    victim = next(p for p in papers if not p.deleted)
    server.delete(victim.id, date(2024, 2, 25))
    gapped = run_main(*args, "audit", "--from", "2024-01-01", "--until", "2024-02-29", "--json")
    assert gapped.returncode == 1, gapped.stderr
    data = json.loads(gapped.stdout)
    assert data["gaps"]["deleted"] == [victim.id] and data["counts"] == {"missing": 0, "stale": 0, "deleted": 1}
    bad = run_main(*args, "audit", "--from", "2024-03-01", "--until", "2024-02-29")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "is after" in bad.stderr
    fixed = run_main(*args, "audit", "--from", "2024-01-01", "--until", "2024-02-29", "--repair")
    assert fixed.returncode == 0, fixed.stderr
    assert victim.id not in {r["id"] for r in scan_all(Layout(tmp_path / "data")).collect().to_dicts()}
