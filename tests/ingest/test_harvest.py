"""End-to-end harvests against a real OAI-PMH server on 127.0.0.1: store contents, checkpoints, faults."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from support.expected import expected_row
from support.oai_records import Paper
from support.oai_server import (
    BadResumptionToken,
    DropConnection,
    HTTPStatus,
    OAIServer,
    ResetMidBody,
    Response,
    Slow,
    TruncatedXML,
)

from papersys import service
from papersys.errors import HarvestError, UsageError
from papersys.runtime import Runtime
from papersys.store.jobs import read_jobs
from papersys.store.layout import Layout
from papersys.store.metadata import METADATA_SCHEMA, scan_all
from papersys.store.state import load_state

from .conftest import NOW, Sleeps, make_config

FROM, UNTIL = date(2024, 1, 1), date(2024, 2, 29)


def stored(layout: Layout) -> dict[str, dict[str, object]]:
    return {r["id"]: r for r in scan_all(layout).collect().to_dicts()}


def live(papers: list[Paper]) -> dict[str, Paper]:
    return {p.id: p for p in papers if not p.deleted}


def test_multi_page_harvest_stores_every_record_exactly(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    layout = Layout(config.data_dir)
    rows = stored(layout)
    assert set(rows) == set(live(papers))
    for paper in papers:
        assert rows[paper.id] == expected_row(paper), paper.id
    assert report.pages == 5 and report.records == 120 and report.new == 120
    assert report.updated == report.deleted == report.invalid == 0
    assert sum(report.years.values()) == 120
    # every year file: exact schema, sorted by id, one row per id
    for year in layout.metadata_years():
        frame = pl.read_parquet(layout.metadata_file(year))
        assert dict(frame.schema) == dict(METADATA_SCHEMA)
        assert frame["id"].to_list() == sorted(frame["id"].to_list())
        assert frame["id"].n_unique() == frame.height
    # the window advanced the watermark and left nothing in progress
    state = load_state(layout)
    assert state.watermark("all") == UNTIL and state.in_progress is None
    assert not any(layout.spool_dir.rglob("*.parquet"))
    # and the job is in the history
    (job,) = read_jobs(layout.jobs_log)
    assert job["job"] == "ingest" and job["outcome"] == "ok" and job["counts"]["new"] == 120


def test_arxivraw_gives_the_same_store(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    raw = make_config(tmp_path / "raw", server.url, metadata_prefix="arXivRaw")
    service.ingest(raw, start=FROM, until=UNTIL, runtime=runtime)
    rows = stored(Layout(raw.data_dir))
    for paper in papers:
        assert rows[paper.id] == expected_row(paper), paper.id
    assert {r.params.get("metadataPrefix") for r in server.requests if "metadataPrefix" in r.params} == {"arXivRaw"}


def test_windows_split_the_range_and_each_is_checkpointed(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url, window_days=7)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert report.sets[0].windows == 9
    asked = [(r.params["from"], r.params["until"]) for r in server.requests if "from" in r.params]
    assert asked[0] == ("2024-01-01", "2024-01-07") and asked[-1] == ("2024-02-26", "2024-02-29")
    assert set(stored(Layout(config.data_dir))) == set(live(papers))


def test_incremental_run_starts_at_watermark_minus_overlap(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url)
    service.ingest(config, start=FROM, until=date(2024, 1, 20), runtime=runtime)
    revised = papers[0].revised(date(2024, 2, 25), title="A revised title")
    server.upsert(revised)
    server.clear_log()
    report = service.ingest(config, runtime=runtime)  # no --from: watermark 2024-01-20 minus 1 day
    first = next(r for r in server.requests if "from" in r.params)
    assert first.params["from"] == "2024-01-19" and first.params["until"] == NOW.date().isoformat()
    assert "watermark 2024-01-20" in report.sets[0].reason
    rows = stored(Layout(config.data_dir))
    assert rows[revised.id]["title"] == "A revised title"
    assert report.updated == 1
    assert load_state(Layout(config.data_dir)).watermark("all") == NOW.date()


def test_first_run_without_from_goes_back_initial_days_and_says_so(
    tmp_path: Path, server: OAIServer, runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url, initial_days=45)
    report = service.ingest(config, runtime=runtime)
    assert report.sets[0].start == date(2024, 1, 16)
    assert "initial_days" in report.sets[0].reason
    assert any("initial_days" in line for line in report.summary())


def test_no_records_match_is_an_empty_result(tmp_path: Path, server: OAIServer, runtime: Runtime) -> None:
    config = make_config(tmp_path, server.url)
    report = service.ingest(config, start=date(2025, 1, 1), until=date(2025, 1, 31), runtime=runtime)
    assert report.records == 0 and report.pages == 0
    assert server.requests[-1].oai_error == "noRecordsMatch"
    assert load_state(Layout(config.data_dir)).watermark("all") == date(2025, 1, 31)


def test_deleted_record_removes_the_paper(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url)
    service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    gone = papers[5]
    server.delete(gone.id, date(2024, 2, 20))
    report = service.ingest(config, start=date(2024, 2, 20), until=UNTIL, runtime=runtime)
    assert report.deleted == 1
    assert gone.id not in stored(Layout(config.data_dir))


def test_503_with_retry_after_then_success(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime, sleeps: Sleeps
) -> None:
    from papersys.daemon.metrics import Metrics

    server.faults.at(server.request_count + 2, HTTPStatus.arxiv_503(retry_after=1))
    config = make_config(tmp_path, server.url)
    metrics = Metrics()
    runtime = dataclasses.replace(runtime, observer=metrics)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert report.retries == 1 and report.requests == 6
    assert metrics.registry.get_sample_value("papersys_harvest_retries_total", {"outcome": "http_503"}) == 1
    assert metrics.registry.get_sample_value("papersys_harvest_requests_total", {"outcome": "ok"}) == 5
    assert sleeps.calls == [1.0]
    assert [r.status for r in server.requests][:3] == [200, 503, 200]
    assert set(stored(Layout(config.data_dir))) == set(live(papers))


def test_retry_after_as_http_date_is_honoured_and_capped(
    tmp_path: Path, server: OAIServer, runtime: Runtime, sleeps: Sleeps
) -> None:
    server.faults.at(server.request_count + 1, HTTPStatus(503, retry_after="Fri, 01 Mar 2024 12:00:30 GMT"))
    server.faults.at(server.request_count + 2, HTTPStatus(429, retry_after="Sat, 01 Mar 2025 12:00:00 GMT"))
    server.faults.at(server.request_count + 3, HTTPStatus(503, retry_after="soon-ish"))
    config = make_config(tmp_path, server.url, max_retry_after_s=120.0, backoff_base_s=2.0)
    service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    # 30 s until the HTTP-date; a year away is capped to 120 s; garbage falls back to backoff 2*2^2
    assert sleeps.calls == [30.0, 120.0, 8.0]


@pytest.mark.parametrize(
    "fault",
    [DropConnection(), ResetMidBody(0.5), TruncatedXML(0.5), HTTPStatus(500), HTTPStatus(502)],
    ids=lambda f: f.name,
)
def test_transient_faults_are_retried_without_losing_records(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime, fault: object
) -> None:
    server.faults.next_with_token(fault)  # type: ignore[arg-type]
    config = make_config(tmp_path, server.url)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert report.retries == 1
    rows = stored(Layout(config.data_dir))
    assert set(rows) == set(live(papers))
    assert all(rows[p.id] == expected_row(p) for p in papers)


def test_slow_server_hits_the_timeout_and_is_retried(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    server.faults.at(server.request_count + 1, Slow(3.0))
    config = make_config(tmp_path, server.url, timeout_s=0.5)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert report.retries == 1
    assert set(stored(Layout(config.data_dir))) == set(live(papers))


def test_truncated_pages_until_retries_run_out_fail_the_window_and_commit_nothing(
    tmp_path: Path, server: OAIServer, runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url, max_retries=2)
    layout = Layout(config.data_dir)
    service.ingest(config, start=FROM, until=date(2024, 1, 10), runtime=runtime)
    before = {p: p.read_bytes() for p in layout.metadata_dir.glob("*.parquet")}
    server.faults.always(TruncatedXML(0.6))
    with pytest.raises(HarvestError, match="malformed XML.*gave up after 3 attempts"):
        service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert {p: p.read_bytes() for p in layout.metadata_dir.glob("*.parquet")} == before
    state = load_state(layout)
    assert state.watermark("all") == date(2024, 1, 10)  # not advanced
    assert state.in_progress is not None and state.in_progress.start == FROM
    assert read_jobs(layout.jobs_log)[-1]["outcome"] == "error"


def test_bad_resumption_token_restarts_the_window(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    server.faults.next_with_token(BadResumptionToken())
    config = make_config(tmp_path, server.url)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert report.window_restarts == 1
    firsts = [r for r in server.requests if "from" in r.params]
    assert len(firsts) == 2  # the window was asked for again from its first page
    rows = stored(Layout(config.data_dir))
    assert set(rows) == set(live(papers))


def test_a_record_revised_between_pages_keeps_its_newest_copy(
    tmp_path: Path, runtime: Runtime, papers: list[Paper]
) -> None:
    # arXiv's paging is stateless: a paper revised during a harvest can show up again on a later page
    from support.oai_records import render_record

    first = papers[0]
    second = first.revised(date(2024, 2, 2), title="Revised  once")
    third = second.revised(date(2024, 2, 3), title="Revised\n  twice")
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        "<responseDate>2024-03-01T12:00:00Z</responseDate><request>x</request><ListRecords>"
    )

    def page(records: list[Paper], token: str) -> Response:
        body = head + "".join(render_record(p, "arXiv") for p in records) + token + "</ListRecords></OAI-PMH>"
        return Response(200, body.encode())

    script = [
        page([first, papers[1]], "<resumptionToken>t1</resumptionToken>"),
        page([third], "<resumptionToken>t2</resumptionToken>"),
        page([second, papers[2]], "<resumptionToken/>"),
    ]
    with OAIServer(script=script) as srv:
        config = make_config(tmp_path, srv.url)
        report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    rows = stored(Layout(config.data_dir))
    assert rows[first.id]["title"] == "Revised twice"
    assert rows[first.id]["datestamp"] == date(2024, 2, 3)
    assert set(rows) == {first.id, papers[1].id, papers[2].id}
    assert report.pages == 3 and report.new == 3


def test_tex_unicode_and_old_style_ids_survive(tmp_path: Path, runtime: Runtime) -> None:
    special = [
        Paper(
            "hep-th/9901001",
            date(2024, 1, 5),
            title="  $\\mathcal{N}=4$ Super-Yang\u2013Mills &\n  <duality> ",
            abstract="  Line one\n  line two\u00a0with \u00fc and \u4e2d\u6587 \U0001f600.\n",
            authors=(("M\u00fcller", "J\u00fcrgen", "Jr"),),
            categories=("hep-th", "math-ph"),
        ),
        Paper("math.AG/0101001", date(2024, 1, 6), categories=("math.AG",)),
        Paper("solv-int/9901001", date(2024, 1, 7), categories=("solv-int", "nlin.SI")),
        Paper(
            "1501.00001",
            date(2024, 1, 8),
            versions=(("v1", "Thu, 1 Jan 2015 10:00:00 GMT", "1kb"), ("v2", "Mon, 07 Oct 2024 10:45:05 GMT", "2kb")),
        ),
    ]
    with OAIServer(special, page_size=2) as srv:
        for prefix in ("arXiv", "arXivRaw"):
            config = make_config(tmp_path / prefix, srv.url, metadata_prefix=prefix)
            service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
            layout = Layout(config.data_dir)
            rows = stored(layout)
            for paper in special:
                assert rows[paper.id] == expected_row(paper), (prefix, paper.id)
            assert layout.metadata_years() == [1999, 2001, 2015]


def test_several_sets_are_harvested_and_checkpointed_separately(
    tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime
) -> None:
    config = make_config(tmp_path, server.url, sets=["cs", "math"])
    service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert {r.params.get("set") for r in server.requests if "from" in r.params} == {"cs", "math"}
    expected = {p.id for p in papers if not p.deleted and (p.in_set("cs") or p.in_set("math"))}
    assert set(stored(Layout(config.data_dir))) == expected
    assert set(load_state(Layout(config.data_dir)).checkpoints) == {"cs", "math"}


def test_category_filter(tmp_path: Path, server: OAIServer, papers: list[Paper], runtime: Runtime) -> None:
    wanted = papers[3].categories[0]
    config = make_config(tmp_path, server.url, categories=[wanted])
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    expected = {p.id for p in papers if wanted in p.categories}
    assert set(stored(Layout(config.data_dir))) == expected
    assert report.filtered == 120 - len(expected)


def test_requests_are_spaced_by_the_politeness_interval(
    tmp_path: Path, server: OAIServer, runtime: Runtime, sleeps: Sleeps
) -> None:
    config = make_config(tmp_path, server.url, request_interval_s=3.0)
    service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    assert sleeps.calls == [3.0, 3.0, 3.0, 3.0]  # 5 pages → 4 gaps


def test_dry_run_harvests_and_counts_but_writes_nothing(tmp_path: Path, server: OAIServer, runtime: Runtime) -> None:
    config = make_config(tmp_path, server.url)
    report = service.ingest(config, start=FROM, until=UNTIL, dry_run=True, runtime=runtime)
    assert report.new == 120 and report.dry_run
    assert not config.data_dir.exists() or not any(p.is_file() for p in config.data_dir.rglob("*"))


def test_bad_requests_are_usage_errors(tmp_path: Path, server: OAIServer, runtime: Runtime) -> None:
    config = make_config(tmp_path, server.url)
    with pytest.raises(UsageError, match="after --until"):
        service.ingest(config, start=UNTIL, until=FROM, runtime=runtime)
    with pytest.raises(UsageError, match="not an arXiv set spec"):
        service.ingest(config, sets=["Computer Science"], runtime=runtime)


def test_oai_bad_argument_fails_clearly(tmp_path: Path, server: OAIServer, runtime: Runtime) -> None:
    config = make_config(tmp_path, server.url, sets=["nosuchset"])
    with pytest.raises(HarvestError, match="badArgument"):
        service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)


def test_report_is_json_ready(tmp_path: Path, server: OAIServer, runtime: Runtime) -> None:
    config = make_config(tmp_path, server.url)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    data = json.loads(json.dumps(report.to_dict()))  # no default=: every value must already be JSON
    assert data["sets"] == [
        {
            "set": "all",
            "start": "2024-01-01",
            "until": "2024-02-29",
            "windows": 1,
            "reason": "from 2024-01-01 (--from)",
            "watermark": "2024-02-29",
        }
    ]
    assert data["years"] == {str(y): n for y, n in report.years.items()}
