"""`papersys serve`: the scheduler built from config, real jobs through the real services, failures that do
not kill the daemon, SIGTERM at a safe point, and the end-to-end daemon with its metrics endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from support.oai_server import HTTPStatus, OAIServer, Slow
from support.papers import synthetic_papers

from papersys.config import Config, config_from_mapping
from papersys.daemon.metrics import Metrics
from papersys.daemon.scheduler import AUDIT, EMBED, FEEDS, INGEST, STARTUP, Daemon
from papersys.store.jobs import read_jobs
from papersys.store.layout import Layout

# the daemon harvests relative to the real clock: recent papers, inside initial_days
PAPERS = synthetic_papers(40, seed=3, start=date.today() - timedelta(days=12), days=10)


@pytest.fixture
def server() -> Iterator[OAIServer]:
    with OAIServer(PAPERS, page_size=15) as srv:
        yield srv


def daemon_config(tmp_path: Path, url: str, **ingest: object) -> Config:
    settings: dict[str, object] = {
        "base_url": url,
        "request_interval_s": 0.0,
        "initial_days": 30,
        "max_retries": 0,
        "timeout_s": 10.0,
    }
    settings.update(ingest)
    return config_from_mapping(
        {
            "data_dir": "data",
            "ingest": settings,
            "scheduler": {
                "ingest_cron": "15 4 * * 1-5",
                "embed_cron": "*/30 * * * *",
                "audit_cron": "0 6 * * 6",
                "timezone": "Europe/Berlin",
                "misfire_grace_s": 120,
            },
            "metrics": {"port": 0},
            "locks": {"timeout_s": 5},
        },
        base_dir=tmp_path,
    )


def test_scheduler_has_exactly_the_configured_jobs_and_triggers(tmp_path: Path) -> None:
    daemon = Daemon(daemon_config(tmp_path, "http://127.0.0.1:9/oai"))
    scheduler = daemon.build(run_now=False)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {INGEST, EMBED, AUDIT}
    ingest = str(jobs[INGEST].trigger)
    assert "minute='15'" in ingest and "hour='4'" in ingest and "day_of_week='mon,tue,wed,thu,fri'" in ingest
    assert "minute='*/30'" in str(jobs[EMBED].trigger)
    assert "hour='6'" in str(jobs[AUDIT].trigger) and "day_of_week='sat'" in str(jobs[AUDIT].trigger)
    assert str(jobs[INGEST].trigger.timezone) == "Europe/Berlin"
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 120
        assert job.func == daemon.run_guarded and job.args in ((INGEST,), (EMBED,), (AUDIT,))
    assert {j.id for j in Daemon(daemon.config).build(run_now=True).get_jobs()} == {INGEST, EMBED, AUDIT, STARTUP}
    # the feed job exists only when feeds are configured, on feed_cron (default: 05:00 UTC, Monday to Friday)
    with_feeds = Daemon(daemon_config(tmp_path, "http://127.0.0.1:9/oai", feeds=["cs"])).build(run_now=False)
    feed_jobs = {job.id: job for job in with_feeds.get_jobs()}
    assert set(feed_jobs) == {INGEST, EMBED, AUDIT, FEEDS}
    trigger = str(feed_jobs[FEEDS].trigger)
    assert "hour='5'" in trigger and "day_of_week='mon,tue,wed,thu,fri'" in trigger


def test_the_audit_job_repairs_the_last_audit_days(tmp_path: Path, server: OAIServer) -> None:
    config = daemon_config(tmp_path, server.url, audit_days=7)
    metrics = Metrics()
    daemon = Daemon(config, observer=metrics)
    assert daemon.run_guarded(INGEST) == "ok"
    recent = max(PAPERS, key=lambda p: p.datestamp)
    server.delete(recent.id, date.today())  # deleted upstream today: inside the last 7 days
    assert daemon.run_guarded(AUDIT) == "ok"
    runs = read_jobs(Layout(config.data_dir).jobs_log)
    assert [(r["job"], r["outcome"]) for r in runs] == [("ingest", "ok"), ("audit", "ok")]
    assert runs[1]["counts"]["deleted"] == 1 and runs[1]["counts"]["fixed"] == 1
    assert runs[1]["counts"]["remaining"] == 0
    saved = json.loads(Layout(config.data_dir).audit_state.read_text())
    assert (
        saved["from"] == (date.today() - timedelta(days=6)).isoformat() and saved["until"] == date.today().isoformat()
    )
    assert metrics.registry.get_sample_value("papersys_audit_gaps", {"class": "deleted"}) == 0


def test_jobs_run_the_real_services_and_a_failure_does_not_stop_the_next(
    tmp_path: Path, server: OAIServer, engine_factory: object
) -> None:
    config = daemon_config(tmp_path, server.url)
    metrics = Metrics()
    daemon = Daemon(config, observer=metrics)

    def embed(cfg: Config, runtime: object) -> None:
        from papersys import service

        service.embed_autopatch(cfg, runtime=runtime, engine_factory=engine_factory)  # type: ignore[arg-type]

    daemon.jobs[EMBED] = embed  # the same service call, with the session's already-loaded model
    server.faults.always(HTTPStatus(500))
    assert daemon.run_guarded(INGEST) == "error"
    server.faults.always(None)
    assert daemon.run_guarded(INGEST) == "ok"
    assert daemon.run_guarded(EMBED) == "ok"
    layout = Layout(config.data_dir)
    runs = read_jobs(layout.jobs_log)
    assert [(r["job"], r["outcome"], r["trigger"]) for r in runs] == [
        ("ingest", "error", "schedule"),
        ("ingest", "ok", "schedule"),
        ("embed-autopatch", "ok", "schedule"),
    ]
    assert "HTTP 500" in runs[0]["error"]
    assert runs[1]["counts"]["new"] == 40 and runs[2]["counts"]["embedded"] == 40
    value = metrics.registry.get_sample_value
    assert value("papersys_job_runs_total", {"job": "ingest", "outcome": "error"}) == 1
    assert value("papersys_job_runs_total", {"job": "ingest", "outcome": "ok"}) == 1
    assert value("papersys_embedded_papers_total", {"model": "minilm"}) == 40
    assert value("papersys_harvest_records_total") == 40
    assert value("papersys_harvest_requests_total", {"outcome": "http_500"}) == 1
    assert value("papersys_backlog_papers", {"model": "minilm"}) == 0  # what is left after the run
    assert value("papersys_job_last_success_timestamp_seconds", {"job": "embed-autopatch"}) > 0


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _write_config(tmp_path: Path, url: str, **ingest: str) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in ingest.items())
    path = tmp_path / "papersys.toml"
    path.write_text(
        f'data_dir = "data"\n[ingest]\nbase_url = "{url}"\nrequest_interval_s = 0.0\n'
        f"initial_days = 30\n{extra}[metrics]\nport = 0\n[api]\nport = 0\n[scheduler]\n"
        'ingest_cron = "0 3 * * *"\nembed_cron = "30 3 * * *"\n'
    )
    return path


def _serve(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "papersys", "--config", str(config), "serve", "--run-now"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_serve_end_to_end(tmp_path: Path, server: OAIServer) -> None:
    config = _write_config(tmp_path, server.url)
    layout = Layout(tmp_path / "data")
    proc = _serve(config)
    try:
        _wait_for(lambda: len(read_jobs(layout.jobs_log)) >= 2 or proc.poll() is not None, 240, "both jobs")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        daemon = json.loads(layout.daemon_state.read_text())
        assert daemon["pid"] == proc.pid and set(daemon["next_runs"]) >= {"ingest", "embed-autopatch"}
        body = urllib.request.urlopen(daemon["metrics"], timeout=10).read().decode()
        assert daemon["metrics"].startswith("http://127.0.0.1:")
        assert "papersys_harvest_records_total 40.0" in body
        assert 'papersys_embedded_papers_total{model="minilm"} 40.0' in body
        assert 'papersys_job_runs_total{job="ingest",outcome="ok"} 1.0' in body
        assert 'papersys_job_runs_total{job="embed-autopatch",outcome="ok"} 1.0' in body
        assert "process_cpu_seconds_total" in body
        assert daemon["api"].startswith("http://127.0.0.1:")  # the API answers beside the scheduler
        health = json.loads(urllib.request.urlopen(daemon["api"] + "/healthz", timeout=30).read())
        assert health["status"] == "ok" and health["indexes"]["minilm"]["indexed"] == 40
        status = subprocess.run(
            [sys.executable, "-m", "papersys", "--config", str(config), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        running = json.loads(status.stdout)
        assert running["daemon"]["state"] == "running" and running["daemon"]["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not layout.daemon_state.exists()
    jobs = read_jobs(layout.jobs_log)
    assert [(j["job"], j["outcome"]) for j in jobs] == [("ingest", "ok"), ("embed-autopatch", "ok")]
    status = subprocess.run(
        [sys.executable, "-m", "papersys", "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(status.stdout)
    assert report["daemon"]["state"] == "stopped"
    assert {k: (v["outcome"], v["end"]) for k, v in report["last_runs"].items()} == {
        j["job"]: (j["outcome"], j["end"]) for j in jobs
    }
    assert report["total_papers"] == 40 and report["models"][0]["valid"] == 40


@pytest.mark.slow
def test_sigterm_stops_a_running_harvest_at_a_safe_point(tmp_path: Path, server: OAIServer) -> None:
    server.faults.always(Slow(1.0))  # every page takes a second: the harvest is mid-way when we stop it
    config = _write_config(tmp_path, server.url, window_days="1")
    layout = Layout(tmp_path / "data")
    proc = _serve(config)
    try:
        _wait_for(lambda: server.request_count >= 3, 120, "the harvest to start")
        asked = server.request_count
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        # it stopped at the page in flight (a full harvest asks for 30 or more, one per day): counted in
        # requests, not seconds, so a slow host cannot fail it
        assert server.request_count <= asked + 1, (asked, server.request_count)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    jobs = read_jobs(layout.jobs_log)
    assert jobs[-1]["job"] == "ingest" and jobs[-1]["outcome"] == "interrupted"
    assert "embed-autopatch" not in {j["job"] for j in jobs}  # the startup run stopped after ingest
    assert not layout.daemon_state.exists()
    assert not any(p.name.endswith(".tmp") for p in layout.root.rglob("*"))
    assert not list(layout.locks_dir.glob("*.holder.json"))  # locks released


def test_a_second_daemon_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, "http://127.0.0.1:9/oai")
    from papersys.errors import LockBusyError
    from papersys.store import locks

    with (
        locks.hold(Layout(config.data_dir), locks.DAEMON, timeout_s=1, command="papersys serve"),
        pytest.raises(LockBusyError, match=f"pid {os.getpid()}"),
    ):
        Daemon(config).serve(install_signals=False)


def test_a_refused_second_daemon_names_the_holder_and_never_takes_the_metrics_or_api_port(tmp_path: Path) -> None:
    import socket

    from papersys.daemon.scheduler import run_daemon
    from papersys.errors import LockBusyError
    from papersys.store import locks

    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    port, api_port = ports
    config = config_from_mapping(
        {"data_dir": "data", "metrics": {"port": port}, "api": {"port": api_port}}, base_dir=tmp_path
    )
    with (
        locks.hold(Layout(config.data_dir), locks.DAEMON, timeout_s=1, command="papersys serve"),
        pytest.raises(LockBusyError, match="papersys serve"),
    ):
        run_daemon(config)
    for free in ports:  # still free: the refused daemon never served metrics or the API
        with socket.socket() as again:
            again.bind(("127.0.0.1", free))
