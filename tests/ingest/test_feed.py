"""Announcement feeds from a real feed server on 127.0.0.1: new, cross, replace and replace-cross items, a
304 on an unchanged feed, an empty weekend feed, a malformed feed, and feed rows superseded by OAI records
(never the other way round)."""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from support.feed_server import LAST_MODIFIED, FeedServer
from support.oai_records import Paper
from support.oai_server import OAIServer

from papersys import service
from papersys.errors import UsageError
from papersys.ingest.feed import parse_feed
from papersys.runtime import Runtime
from papersys.store.atomic import read_json
from papersys.store.layout import Layout
from papersys.store.metadata import scan_all, upsert

from .conftest import Sleeps, make_config
from .test_ingest_cli import run_main, write_config

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"
DAY = FEEDS / "arxiv_rss_cs.xml"
WEEKEND = FEEDS / "arxiv_rss_cs_weekend.xml"
ANNOUNCED = date(2026, 11, 24)


def stored(layout: Layout) -> dict[str, dict[str, object]]:
    return {r["id"]: r for r in scan_all(layout).collect().to_dicts()}


def test_parse_every_item_of_an_announcement_day() -> None:
    items, skipped = parse_feed(DAY.read_bytes())
    assert skipped == 0
    assert [(i.id, i.version, i.announce_type) for i in items] == [
        ("2611.12345", 1, "new"),
        ("2611.12346", 1, "new"),
        ("2611.12001", 1, "cross"),
        ("2409.00001", 3, "replace"),
        ("2310.05555", 2, "replace-cross"),
    ]
    first = items[0]
    assert first.title == r"Sparse Attention for $O(n \log n)$ Transformers & Their Limits"
    assert (
        first.abstract
        == r"We study sparse attention in transformers whose cost is $O(n \log n)$ & show where it fails."
    )
    assert first.authors == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert first.categories == ["cs.LG", "stat.ML"] and first.announced == ANNOUNCED
    assert first.license == "http://creativecommons.org/licenses/by/4.0/"
    assert items[1].authors == ["Jean-Pierre Dubois", "María José García"]
    assert all(not i.abstract.startswith(("arXiv:", "Abstract")) for i in items)


def test_feed_stores_new_papers_marks_replacements_and_is_polite(
    tmp_path: Path, runtime: Runtime, sleeps: Sleeps
) -> None:
    with FeedServer(DAY.read_bytes(), failures=deque([(503, {"Retry-After": "5"})])) as server:
        config = make_config(tmp_path, "http://127.0.0.1:9/oai", feeds=["cs", "stat.ML"], feed_base_url=server.base_url)
        report = service.ingest_feeds(config, runtime=runtime)
        assert [path for path, _ in server.requests] == ["/rss/cs+stat.ML"] * 2  # one URL, "+"-joined
        assert report.retries == 1 and 5.0 in sleeps.calls  # the 503's Retry-After was honoured
        assert report.by_type == {"new": 2, "cross": 1, "replace": 1, "replace-cross": 1}
        assert set(report.stored) == {"2611.12345", "2611.12346", "2611.12001"}
        assert report.replaced == ("2310.05555", "2409.00001")
        layout = Layout(config.data_dir)
        rows = stored(layout)
        assert set(rows) == set(report.stored)
        row = rows["2611.12001"]
        assert row["source"] == "feed" and row["primary_category"] == "math.OC"
        assert row["categories"] == ["math.OC", "cs.DS"] and row["authors"] == ["Wei Zhang"]
        assert row["created"] == ANNOUNCED and row["datestamp"] == ANNOUNCED and row["doi"] is None
        state = read_json(layout.feed_state)
        feed = state["feeds"][f"{server.base_url}/cs+stat.ML"]
        assert feed["etag"] == server.etag and feed["last_modified"] == LAST_MODIFIED
        assert feed["newest_item"] == "2026-11-24"
        assert state["replaced"]["2409.00001"] == {"version": 3, "announced": "2026-11-24"}
        assert service.status(config).freshness["newest_feed_item"] == "2026-11-24"

        # unchanged feed: a conditional GET, a 304, nothing written
        before = {p: p.stat().st_mtime_ns for p in layout.metadata_dir.iterdir()}
        again = service.ingest_feeds(config, runtime=runtime)
        _path, headers = server.requests[-1]
        assert headers["If-None-Match"] == server.etag and headers["If-Modified-Since"] == LAST_MODIFIED
        assert again.not_modified and again.stored == () and again.requests == 1
        assert {p: p.stat().st_mtime_ns for p in layout.metadata_dir.iterdir()} == before
        assert "not modified since the last fetch (HTTP 304)" in again.summary()[0]


def test_an_empty_weekend_feed_is_no_error(tmp_path: Path, runtime: Runtime) -> None:
    with FeedServer(WEEKEND.read_bytes()) as server:
        config = make_config(tmp_path, "http://127.0.0.1:9/oai", feeds=["cs"], feed_base_url=server.base_url)
        report = service.ingest_feeds(config, runtime=runtime)
    assert report.items == 0 and report.stored == () and not report.not_modified
    assert Layout(config.data_dir).metadata_years() == []


def test_a_malformed_feed_is_one_line_and_stores_nothing(tmp_path: Path) -> None:
    truncated = DAY.read_bytes()[:1500]
    with FeedServer(truncated) as server:
        config = write_config(
            tmp_path, "http://127.0.0.1:9/oai", feeds='["cs"]', feed_base_url=f'"{server.base_url}"', max_retries="1"
        )
        proc = run_main("--config", str(config), "ingest", "--feeds")
        assert len(server.requests) == 2  # retried once, like a malformed OAI page
    assert proc.returncode != 0 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]  # besides the retry warning
    assert len(errors) == 1 and errors[0].startswith("error: harvest of feed ") and "malformed XML" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "metadata").exists() or not any((tmp_path / "data" / "metadata").iterdir())


def test_no_feeds_configured_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no feeds configured"):
        service.ingest_feeds(make_config(tmp_path, "http://127.0.0.1:9/oai"))


def test_oai_records_replace_feed_rows_and_feed_rows_never_replace_oai(
    tmp_path: Path, runtime: Runtime, papers: list[Paper]
) -> None:
    known = next(p for p in papers if not p.deleted)
    body = DAY.read_bytes().replace(b"2611.12346", known.id.encode())  # a "new" item of a paper already held
    with OAIServer(papers, page_size=50) as oai, FeedServer(body) as feed:
        config = make_config(tmp_path, oai.url, feeds=["cs"], feed_base_url=feed.base_url)
        layout = Layout(config.data_dir)
        service.ingest(config, start=date(2024, 1, 1), until=date(2024, 2, 29), runtime=runtime)
        held = stored(layout)[known.id]
        report = service.ingest_feeds(config, runtime=runtime)
        assert report.already == 1 and known.id not in report.stored
        assert stored(layout)[known.id] == held  # the feed never touches an OAI row

        # the paper's OAI record arrives, datestamped a day before the announcement: it still wins
        full = dataclasses.replace(
            known, id="2611.12345", datestamp=date(2026, 11, 23), title="The Full Title", doi="10.1000/x"
        )
        oai.upsert(full)
        audit = service.audit(config, start=date(2026, 11, 23), until=date(2026, 11, 24), runtime=runtime)
        assert audit.gaps["stale"] == ("2611.12345",)  # listed, and only a feed row stored: not complete yet
        service.ingest(config, start=date(2026, 11, 23), until=date(2026, 11, 23), runtime=runtime)
        row = stored(layout)["2611.12345"]
        assert row["source"] == "oai" and row["title"] == "The Full Title" and row["doi"] == "10.1000/x"
        assert row["datestamp"] == date(2026, 11, 23)

    # and a later feed row (newer datestamp) is superseded by the OAI row, not stored over it
    feed_row = pl.DataFrame([{**row, "title": "feed title", "source": "feed", "datestamp": date(2026, 12, 1)}])
    result = upsert(layout, feed_row.cast(pl.DataFrame([row]).schema))  # type: ignore[arg-type]
    assert result.total("superseded") == 1 and stored(layout)["2611.12345"]["title"] == "The Full Title"


def test_cli_ingest_feeds_json(tmp_path: Path) -> None:
    with FeedServer(DAY.read_bytes()) as server:
        config = write_config(tmp_path, "http://127.0.0.1:9/oai", feeds='["cs"]', feed_base_url=f'"{server.base_url}"')
        proc = run_main("--config", str(config), "ingest", "--feeds", "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert sorted(data["stored"]) == ["2611.12001", "2611.12345", "2611.12346"]
        assert data["url"] == f"{server.base_url}/cs" and data["newest_item"] == "2026-11-24"
        bad = run_main("--config", str(config), "ingest", "--feeds", "--from", "2024-01-01")
        assert bad.returncode == 2 and "--feeds cannot be combined" in bad.stderr
