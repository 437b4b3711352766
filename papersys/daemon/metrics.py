"""Prometheus metrics (the one module importing prometheus_client): an Observer backed by its own registry."""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

_BATCH_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Implements ``papersys.runtime.Observer``; every series is prefixed ``papersys_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.harvest_records_total = Counter(
            "papersys_harvest_records", "OAI-PMH records harvested (incl. deletions)", registry=r
        )
        self.harvest_requests_total = Counter(
            "papersys_harvest_requests",
            "OAI-PMH HTTP requests by outcome (ok, http_503, timeout, malformed, …)",
            ["outcome"],
            registry=r,
        )
        self.harvest_retries_total = Counter(
            "papersys_harvest_retries",
            "OAI-PMH retries by the outcome that caused them (a request retried, or a window restarted "
            "after bad_resumption_token)",
            ["outcome"],
            registry=r,
        )
        self.embedded_papers_total = Counter(
            "papersys_embedded_papers", "Papers embedded and written, by model", ["model"], registry=r
        )
        self.embed_batch_seconds = Histogram(
            "papersys_embed_batch_seconds",
            "Seconds per embedding batch, by model",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.backlog_papers = Gauge(
            "papersys_backlog_papers", "Papers lacking a valid, current vector, by model", ["model"], registry=r
        )
        self.audit_gaps_ids = Gauge(
            "papersys_audit_gaps",
            "Gaps the last audit left (after any repair), by class (missing, stale, deleted)",
            ["class"],
            registry=r,
        )
        self._newest: float | None = None  # Unix time of 00:00 UTC of the newest stored datestamp
        self.freshness_seconds = Gauge(
            "papersys_freshness_seconds",
            "Seconds since the start (00:00 UTC) of the newest datestamp in the store (NaN: empty store)",
            registry=r,
        )
        self.freshness_seconds.set_function(self._age)
        self.job_runs_total = Counter(
            "papersys_job_runs", "Job runs by job and outcome (ok, error, interrupted)", ["job", "outcome"], registry=r
        )
        self.job_last_success = Gauge(
            "papersys_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful end",
            ["job"],
            registry=r,
        )
        self.job_duration = Gauge(
            "papersys_job_duration_seconds", "Duration of the job's last run", ["job"], registry=r
        )

    def harvest_request(self, outcome: str) -> None:
        self.harvest_requests_total.labels(outcome=outcome).inc()

    def harvest_retry(self, outcome: str) -> None:
        self.harvest_retries_total.labels(outcome=outcome).inc()

    def harvest_records(self, count: int) -> None:
        self.harvest_records_total.inc(count)

    def embedded(self, model: str, count: int, seconds: float) -> None:
        self.embedded_papers_total.labels(model=model).inc(count)
        self.embed_batch_seconds.labels(model=model).observe(seconds)

    def backlog(self, model: str, count: int) -> None:
        self.backlog_papers.labels(model=model).set(count)

    def audit_gaps(self, klass: str, count: int) -> None:
        self.audit_gaps_ids.labels(**{"class": klass}).set(count)

    def freshness(self, newest: date | None) -> None:
        self._newest = (
            None if newest is None else datetime(newest.year, newest.month, newest.day, tzinfo=UTC).timestamp()
        )

    def _age(self) -> float:
        return math.nan if self._newest is None else time.time() - self._newest

    def job_finished(self, job: str, outcome: str, seconds: float) -> None:
        self.job_runs_total.labels(job=job, outcome=outcome).inc()
        self.job_duration.labels(job=job).set(seconds)
        if outcome == "ok":
            self.job_last_success.labels(job=job).set(time.time())

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Expose ``/metrics`` over HTTP in a daemon thread; returns the bound (host, port)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound_host, bound_port = server.server_address[:2]
        return str(bound_host), int(bound_port)
