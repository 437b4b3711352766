"""A flaky server: seeded random 503s (``Retry-After`` in seconds and as an HTTP date), 429s, 500s, resets
mid-body, answers slower than the timeout, truncated XML and badResumptionToken. Every harvest ends with the
store of a fault-free run, and what the server logged matches, fault for fault, the report's ``requests``
and ``retries``, the Prometheus counters by outcome and the waits the client asked for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from support.oai_server import BadResumptionToken, HTTPStatus, OAIServer, ResetMidBody, Slow, TruncatedXML
from support.papers import synthetic_papers

from papersys import service
from papersys.config import Config, config_from_mapping
from papersys.daemon.metrics import Metrics
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import read_deletions, scan_all
from papersys.store.state import load_state

from .conftest import assert_store_sound

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
FROM, UNTIL = date(2024, 1, 1), date(2024, 1, 30)
PAPERS = synthetic_papers(1500, seed=5, start=FROM, days=30, deleted_fraction=0.03)
RETRY_AFTER_S, HTTP_DATE_S, RATE_LIMIT_S = 7.0, 11.0, 13.0  # distinct from every backoff step (0.125 * 2**k)
BACKOFF_S = 0.125
TIMEOUT_S, SLOW_S = 1.0, 2.0  # a normal page takes milliseconds: no false timeouts on a busy host


@dataclass(frozen=True)
class DatedRetry503(HTTPStatus):
    """arXiv's 503, but with ``Retry-After`` as an HTTP date (logged apart from the seconds form)."""

    @property
    def name(self) -> str:  # type: ignore[override]
        return "http_503_date"


FAULTS = {
    HTTPStatus.arxiv_503(retry_after=int(RETRY_AFTER_S)): 0.04,
    DatedRetry503(503, format_datetime(NOW + timedelta(seconds=HTTP_DATE_S), usegmt=True), b"busy\n"): 0.03,
    HTTPStatus(429, retry_after=int(RATE_LIMIT_S)): 0.03,
    HTTPStatus(500): 0.03,
    ResetMidBody(0.4): 0.03,
    Slow(SLOW_S): 0.02,
    TruncatedXML(0.5): 0.04,
    BadResumptionToken(): 0.02,
}
# what the client makes of each fault: the outcome label it counts, the wait it asks for (None: backoff)
OUTCOME = {
    "http_503": ("http_503", RETRY_AFTER_S),
    "http_503_date": ("http_503", HTTP_DATE_S),
    "http_429": ("http_429", RATE_LIMIT_S),
    "http_500": ("http_500", None),
    "reset": ("connection_error", None),
    "slow": ("timeout", None),
    "truncated": ("malformed", None),
}


def config_at(root: Path, url: str) -> Config:
    ingest = {
        "base_url": url,
        "request_interval_s": 0.0,
        "window_days": 10,
        "max_retries": 8,
        "backoff_base_s": BACKOFF_S,
        "timeout_s": TIMEOUT_S,
    }
    return config_from_mapping({"data_dir": "data", "ingest": ingest}, base_dir=root)


@pytest.fixture(scope="module")
def server() -> Iterator[OAIServer]:
    with OAIServer(PAPERS, page_size=50) as srv:
        srv.warm()
        yield srv


@pytest.fixture(scope="module")
def fault_free(server: OAIServer, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    config = config_at(tmp_path_factory.mktemp("fault-free"), server.url)
    report = service.ingest(config, start=FROM, until=UNTIL, runtime=Runtime(clock=lambda: NOW))
    assert report.retries == 0 and report.pages >= 30
    return Layout(config.data_dir)


def expected_waits(outcomes: list[str | None]) -> list[float]:
    """The waits the client must ask for, from the server's log alone: Retry-After where the fault gave
    one, else backoff doubling per consecutive failure of the same request."""
    waits, attempt = [], 0
    for fault in outcomes:
        if fault in OUTCOME:
            hinted = OUTCOME[fault][1]
            waits.append(hinted if hinted is not None else BACKOFF_S * 2**attempt)
            attempt += 1
        else:  # an answer (a badResumptionToken too): the next request starts afresh
            attempt = 0
    return waits


SEEDS = (1, 2, 4)  # together they inject every kind of fault at least twice (checked below)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_give_the_fault_free_store_and_counters_match_the_server_log(
    tmp_path: Path, server: OAIServer, fault_free: Layout, seed: int
) -> None:
    config = config_at(tmp_path, server.url)
    metrics, waits = Metrics(), []
    runtime = Runtime(clock=lambda: NOW, observer=metrics, sleeper=waits.append)
    server.clear_log()
    server.faults.random(seed=seed, rates=FAULTS)
    try:
        report = service.ingest(config, start=FROM, until=UNTIL, runtime=runtime)
    finally:
        server.faults.clear()

    layout = Layout(config.data_dir)
    assert_store_sound(layout.root)
    assert_frame_equal(scan_all(layout).collect().sort("id"), scan_all(fault_free).collect().sort("id"))
    assert_frame_equal(read_deletions(layout), read_deletions(fault_free))
    assert load_state(layout).watermark("all") == UNTIL and load_state(layout).in_progress is None
    assert server.errors == []

    log = [r.fault for r in server.requests]
    injected = Counter(f for f in log if f is not None)
    assert sum(injected.values()) >= 5, f"seed {seed} injected too little to test anything: {injected}"
    # the report: every request counted, every retried fault a retry, every bad token a window restart
    assert report.requests == len(log)
    assert report.retries == sum(n for f, n in injected.items() if f in OUTCOME)
    assert report.window_restarts == injected["bad_resumption_token"]
    # the metrics: requests by outcome
    counted = Counter()
    for fault in log:
        counted[OUTCOME[fault][0] if fault in OUTCOME else "ok"] += 1
    value = metrics.registry.get_sample_value
    for outcome, n in counted.items():
        assert value("papersys_harvest_requests_total", {"outcome": outcome}) == n, outcome
    assert sum(counted.values()) == report.requests
    # the waits: Retry-After honoured in both forms, backoff otherwise; no other sleep
    assert waits == expected_waits(log)


def test_every_fault_kind_is_exercised_by_the_seeds() -> None:
    """The seeds above are not lucky: together they inject every kind of fault more than once."""
    from support.oai_faults import FaultPlan

    seen: Counter[str] = Counter()
    for seed in SEEDS:
        plan = FaultPlan()
        plan.random(seed=seed, rates=FAULTS)
        # a harvest makes at least 30 requests (30 pages, see fault_free): its first 30 draws
        seen.update(f.name for n in range(1, 31) if (f := plan.pick(n, has_token=True)) is not None)
    assert set(seen) == {*OUTCOME, "bad_resumption_token"}, seen
    assert all(n >= 2 for n in seen.values()), seen


def test_a_window_whose_pages_keep_failing_commits_nothing(
    tmp_path: Path, server: OAIServer, fault_free: Layout
) -> None:
    config = config_at(tmp_path, server.url)
    service.ingest(config, start=FROM, until=date(2024, 1, 10), runtime=Runtime(clock=lambda: NOW))
    layout = Layout(config.data_dir)
    before = {p: p.read_bytes() for p in layout.metadata_dir.glob("*.parquet")}
    waits: list[float] = []
    server.faults.next_with_token(TruncatedXML(0.5), times=9)  # one page fails 9 times: retries run out
    try:
        from papersys.errors import HarvestError

        with pytest.raises(HarvestError, match="malformed XML.*gave up after 9 attempts"):
            service.ingest(config, until=UNTIL, runtime=Runtime(clock=lambda: NOW, sleeper=waits.append))
    finally:
        server.faults.clear()
    assert {p: p.read_bytes() for p in layout.metadata_dir.glob("*.parquet")} == before
    assert waits == [BACKOFF_S * 2**k for k in range(8)]
    state = load_state(layout)
    assert state.watermark("all") == date(2024, 1, 10) and state.in_progress is not None
    # the next run redoes that window and ends with the fault-free store
    service.ingest(config, until=UNTIL, runtime=Runtime(clock=lambda: NOW))
    assert_frame_equal(scan_all(layout).collect().sort("id"), scan_all(fault_free).collect().sort("id"))
    assert pl.read_parquet(layout.deletions_file).height == read_deletions(fault_free).height
