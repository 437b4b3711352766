"""Freshness and the last audit in `status` and in the metrics: the newest stored datestamp, its age, the gaps."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

from support.oai_records import Paper
from support.oai_server import OAIServer

from papersys import service
from papersys.daemon.metrics import Metrics
from papersys.daemon.scheduler import prime_metrics
from papersys.runtime import Runtime

from .conftest import NOW, Sleeps, make_config

FROM, UNTIL = date(2024, 1, 1), date(2024, 2, 29)


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def test_status_and_metrics_show_freshness_and_the_last_audit(
    tmp_path: Path, server: OAIServer, papers: list[Paper], sleeps: Sleeps
) -> None:
    metrics = Metrics()
    runtime = Runtime(clock=lambda: NOW, sleeper=sleeps.sleep, monotonic=sleeps.monotonic, observer=metrics)
    config = make_config(tmp_path, server.url)
    gauge = metrics.registry.get_sample_value

    empty = service.status(config)
    assert empty.freshness == {"newest_datestamp": None, "age_seconds": None, "newest_feed_item": None}
    assert empty.audit == {}
    assert "freshness: no papers stored" in empty.summary() and "audit: never ran (`papersys audit`)" in empty.summary()

    hidden = [p.id for p in papers if not p.deleted][:2]
    server.hide_from_list_records(*hidden)
    service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    newest = max(p.datestamp for p in papers if p.id not in hidden)
    age = gauge("papersys_freshness_seconds")
    assert age is not None and abs(age - (time.time() - _midnight(newest))) < 600

    report = service.status(config)
    assert report.freshness["newest_datestamp"] == newest.isoformat()
    assert abs(report.freshness["age_seconds"] - (time.time() - _midnight(newest))) < 600

    service.audit(config, start=FROM, until=UNTIL, runtime=runtime)
    assert gauge("papersys_audit_gaps", {"class": "missing"}) == 2
    assert gauge("papersys_audit_gaps", {"class": "stale"}) == 0
    audit = service.status(config).audit
    assert audit["from"] == "2024-01-01" and audit["until"] == "2024-02-29" and audit["sets"] == ["all"]
    assert audit["counts"] == {"missing": 2, "stale": 0, "deleted": 0} and audit["repaired"] is False
    assert audit["remaining"] == {"missing": 2, "stale": 0, "deleted": 0} and audit["clean"] is False
    assert audit["at"] == NOW.isoformat()
    line = next(x for x in service.status(config).summary() if x.startswith("audit: "))
    assert "2 missing, 0 stale, 0 deleted; 2 gap(s) remain" in line

    # a daemon starting now shows the last audit's gaps before its first job run
    fresh = Metrics()
    prime_metrics(config, fresh)
    assert fresh.registry.get_sample_value("papersys_audit_gaps", {"class": "missing"}) == 2
    assert fresh.registry.get_sample_value("papersys_freshness_seconds") is not None

    service.audit(config, start=FROM, until=UNTIL, repair=True, runtime=runtime)
    assert gauge("papersys_audit_gaps", {"class": "missing"}) == 0
    audit = service.status(config).audit
    assert audit["repaired"] is True and audit["fixed"] == 2 and audit["clean"] is True
    assert audit["counts"]["missing"] == 2 and audit["remaining"]["missing"] == 0
