"""Security basics: hostile XML (entity bomb, external entity) is refused like a malformed page and never
reaches the store; metrics listen on loopback by default; secrets given as ``env:VAR`` reach the server and
nowhere else (logs, reports, job history, daemon and lock files, error messages, the config's repr)."""

from __future__ import annotations

import base64
import json
import logging
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from support.oai_server import BillionLaughs, ExternalEntity, HTTPStatus, OAIServer
from support.papers import synthetic_papers

from papersys import service
from papersys.config import Config, MetricsConfig, config_from_mapping, load_config
from papersys.daemon.metrics import Metrics
from papersys.errors import ConfigError, HarvestError
from papersys.ingest.oai import _MalformedPage, parse_page
from papersys.runtime import Runtime
from papersys.store.jobs import read_jobs
from papersys.store.layout import Layout
from papersys.store.metadata import scan_all
from papersys.store.state import load_state

from .conftest import REPO, child_env, cli, fingerprint, run_cli

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
FROM, UNTIL = date(2024, 1, 1), date(2024, 1, 20)
PAPERS = synthetic_papers(300, seed=17, start=FROM, days=20)
TOKEN = "tok-9f3b7c1e5a2d4b6f8e0a"  # distinctive: searched for in every log line and file
PASSWORD = "pw-51c8e2a7d9f04b3e"


@pytest.fixture(scope="module")
def server() -> Iterator[OAIServer]:
    with OAIServer(PAPERS, page_size=50) as srv:
        yield srv


def config_at(root: Path, url: str, env: dict[str, str] | None = None, **ingest: object) -> Config:
    settings: dict[str, object] = {"base_url": url, "request_interval_s": 0.0, "backoff_base_s": 0.0}
    settings.update(ingest)
    return config_from_mapping({"data_dir": "data", "ingest": settings}, base_dir=root, env=env)


@pytest.fixture(scope="module")
def clean(server: OAIServer, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    config = config_at(tmp_path_factory.mktemp("clean"), server.url)
    service.ingest(config, start=FROM, until=UNTIL, runtime=Runtime(clock=lambda: NOW))
    return Layout(config.data_dir)


def passwd_lines() -> list[bytes]:
    """Lines of /etc/passwd an external entity would pull in (the file exists on every test host)."""
    return [line for line in Path("/etc/passwd").read_bytes().splitlines() if len(line) > 8]


def assert_nothing_of(root: Path, needles: list[bytes]) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaked = [n for n in needles if n in data]
            assert not leaked, f"{path} contains {leaked[0]!r}"


@pytest.mark.parametrize("fault", [BillionLaughs(), ExternalEntity()], ids=lambda f: f.name)
def test_a_hostile_page_is_refused_and_retried_and_nothing_of_it_is_stored(
    tmp_path: Path, server: OAIServer, clean: Layout, fault: object
) -> None:
    config = config_at(tmp_path, server.url)
    metrics = Metrics()
    server.faults.next_with_token(fault, times=2)  # type: ignore[arg-type]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        report = service.ingest(config, start=FROM, until=UNTIL, runtime=Runtime(clock=lambda: NOW, observer=metrics))
    finally:
        server.faults.clear()
    # no entity was expanded: the bomb expands to 3 GB (a check by memory, not by the clock of a busy host)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib < 1024 * 1024
    assert report.retries == 2
    assert metrics.registry.get_sample_value("papersys_harvest_requests_total", {"outcome": "malformed"}) == 2
    layout = Layout(config.data_dir)
    assert_frame_equal(scan_all(layout).collect().sort("id"), scan_all(clean).collect().sort("id"))
    assert_nothing_of(layout.root, [b"lollollol", *passwd_lines()])


@pytest.mark.parametrize("fault", [BillionLaughs(), ExternalEntity()], ids=lambda f: f.name)
def test_a_server_that_only_sends_hostile_pages_fails_the_window_cleanly(
    tmp_path: Path, server: OAIServer, fault: object
) -> None:
    """Decision: a hostile page is a malformed page. Retried; when retries run out the window fails with
    a HarvestError saying why, commits nothing, and the next run redoes it. Never a silent skip."""
    config = config_at(tmp_path, server.url, max_retries=2)
    server.faults.always(fault)  # type: ignore[arg-type]
    try:
        with pytest.raises(HarvestError, match=r"gave up after 3 attempts") as err:
            service.ingest(config, start=FROM, until=UNTIL, runtime=Runtime(clock=lambda: NOW))
    finally:
        server.faults.always(None)
    layout = Layout(config.data_dir)
    assert layout.metadata_years() == [] and not layout.deletions_file.exists()
    state = load_state(layout)
    assert state.in_progress is not None and state.watermark("all") is None  # redone by the next run
    (job,) = read_jobs(layout.jobs_log)
    assert job["outcome"] == "error" and job["error"] == str(err.value)
    # refused by libxml2's amplification limit (the bomb) or by our no-DTD rule (the external entity)
    assert "entity amplification" in job["error"] or "declares a DTD" in job["error"]
    assert_nothing_of(layout.root, passwd_lines())
    assert not any(line.decode(errors="replace") in str(err.value) for line in passwd_lines())


def test_the_strict_parser_expands_no_entity_and_fetches_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for doctype, ref in [
        (f'<!DOCTYPE OAI-PMH [<!ENTITY x SYSTEM "file://{secret}">]>', "&x;"),
        ('<!DOCTYPE OAI-PMH [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>', ""),
        ('<!DOCTYPE OAI-PMH SYSTEM "http://127.0.0.1:9/evil.dtd">', ""),
    ]:
        page = (
            f'<?xml version="1.0"?>{doctype}<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
            f"<responseDate>{ref}</responseDate></OAI-PMH>"
        ).encode()
        with pytest.raises(_MalformedPage) as err:
            parse_page(page)
        assert "TOP-SECRET" not in str(err.value)


def test_metrics_listen_on_loopback_by_default() -> None:
    assert MetricsConfig().host == "127.0.0.1" and Config().metrics.host == "127.0.0.1"
    host, port = Metrics().serve(MetricsConfig().host, 0)
    assert host == "127.0.0.1"
    assert listening_address(port) == "127.0.0.1"


def listening_address(port: int) -> str:
    """The local address the socket listening on ``port`` is bound to, from /proc/net/tcp{,6}."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hexport = local.partition(":")
            if int(hexport, 16) == port and state == "0A":  # LISTEN
                if len(address) == 8:
                    return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
                return address
    raise AssertionError(f"nothing listens on port {port}")


# secrets ---------------------------------------------------------------------------------------------------
def secret_configs(root: Path, url: str) -> list[Config]:
    env = {"OAI_TOKEN": TOKEN, "OAI_URL": url.replace("http://", f"http://harvester:{PASSWORD}@")}
    return [
        config_at(root / "token", url, env, auth_token="env:OAI_TOKEN"),
        config_at(root / "basic", "env:OAI_URL", env),
    ]


def test_env_references_resolve_at_load_and_a_missing_variable_names_key_and_variable(tmp_path: Path) -> None:
    file = tmp_path / "papersys.toml"
    file.write_text('[ingest]\nauth_token = "env:PAPERSYS_TEST_TOKEN"\nbase_url = "env:PAPERSYS_TEST_URL"\n')
    config = load_config(file, env={"PAPERSYS_TEST_TOKEN": TOKEN, "PAPERSYS_TEST_URL": "https://proxy.invalid/oai"})
    assert config.ingest.auth_token.get_secret_value() == TOKEN
    assert config.ingest.base_url == "https://proxy.invalid/oai"
    with pytest.raises(ConfigError) as err:
        load_config(file, env={"PAPERSYS_TEST_URL": "https://proxy.invalid/oai"})
    assert str(err.value) == f"{file}: ingest.auth_token: environment variable PAPERSYS_TEST_TOKEN is not set"
    with pytest.raises(ConfigError, match="auth_token: environment variable PAPERSYS_TEST_TOKEN is empty"):
        load_config(file, env={"PAPERSYS_TEST_TOKEN": "", "PAPERSYS_TEST_URL": "https://x.invalid/"})
    with pytest.raises(ConfigError, match="printable ASCII") as bad:
        load_config(file, env={"PAPERSYS_TEST_TOKEN": f"{TOKEN}\r\nX-Evil: 1", "PAPERSYS_TEST_URL": "https://x/"})
    assert TOKEN not in str(bad.value)


def test_a_third_party_message_quoting_a_secret_is_masked(tmp_path: Path) -> None:
    """Defence in depth: requests never quotes headers or stripped credentials, but should one of its
    messages carry a secret, the client masks it before it reaches a log line or jobs.jsonl."""
    from papersys.ingest.oai import OAIClient

    token_config, basic_config = secret_configs(tmp_path, "http://127.0.0.1:9/oai")
    message = f"header 'Bearer {TOKEN}', url http://harvester:{PASSWORD}@host"
    masked = OAIClient(token_config.ingest, Runtime())._redact(message)
    assert masked == f"header 'Bearer ***', url http://harvester:{PASSWORD}@host"
    masked = OAIClient(basic_config.ingest, Runtime())._redact(message)
    assert masked == f"header 'Bearer {TOKEN}', url http://harvester:***@host"


def test_secrets_are_sent_and_masked_everywhere_in_process(
    tmp_path: Path, server: OAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for config in secret_configs(tmp_path, server.url):
        shown = f"{config!r} {config} {config.ingest!r} {config.model_dump()} {config.model_dump_json()}"
        assert TOKEN not in shown and PASSWORD not in shown
        server.clear_log()
        report = service.ingest(config, start=FROM, until=UNTIL, runtime=Runtime(clock=lambda: NOW))
        (sent,) = {r.headers.get("Authorization") for r in server.requests}
        if config.ingest.auth_token.get_secret_value():
            assert sent == f"Bearer {TOKEN}"
        else:  # the URL's user:password, moved out of the URL, as basic auth
            assert sent == "Basic " + base64.b64encode(f"harvester:{PASSWORD}".encode()).decode()
        assert TOKEN not in json.dumps(report.to_dict(), default=str) and TOKEN not in "\n".join(report.summary())
        # failures: a refusal, and a server that is gone; their messages land in logs and jobs.jsonl
        server.faults.always(HTTPStatus(401))
        with pytest.raises(HarvestError) as refused:
            service.ingest(config, start=FROM, until=UNTIL, runtime=Runtime(clock=lambda: NOW))
        server.faults.always(None)
        dead = config.model_copy(
            update={"ingest": config.ingest.model_copy(update={"base_url": "http://127.0.0.1:9/oai", "max_retries": 0})}
        )
        with pytest.raises(HarvestError) as gone:
            service.ingest(dead, start=FROM, until=UNTIL, runtime=Runtime(clock=lambda: NOW))
        for text in (str(refused.value), str(gone.value)):
            assert TOKEN not in text and PASSWORD not in text
        assert_nothing_of(config.data_dir, [TOKEN.encode(), PASSWORD.encode()])
    assert TOKEN not in caplog.text and PASSWORD not in caplog.text
    # DEBUG logging of the HTTP layer was on and captured (by logger name: the text's format is whatever the
    # process's log formatter is, and Ray, once started in this process, rewrites it)
    assert any(record.name.startswith("urllib3") and record.levelno == logging.DEBUG for record in caplog.records)


def test_secrets_never_reach_cli_output_or_any_state_file_of_the_daemon(tmp_path: Path) -> None:
    recent = synthetic_papers(40, seed=3, start=date.today() - timedelta(days=12), days=10)
    with OAIServer(recent, page_size=15) as srv:
        config = tmp_path / "papersys.toml"
        config.write_text(
            'data_dir = "data"\nlog_level = "DEBUG"\n[ingest]\nbase_url = "env:PAPERSYS_TEST_URL"\n'
            'auth_token = "env:PAPERSYS_TEST_TOKEN"\nrequest_interval_s = 0.0\ninitial_days = 30\n'
            '[metrics]\nport = 0\n[api]\nport = 0\n[[embedding.models]]\nalias = "minilm"\nenabled = false\n'
        )
        env = {"PAPERSYS_TEST_TOKEN": TOKEN, "PAPERSYS_TEST_URL": srv.url}
        layout = Layout(tmp_path / "data")
        ingest = run_cli("--config", config, "ingest", "--json", env=env)
        assert ingest.returncode == 0, ingest.stderr
        assert json.loads(ingest.stdout)["new"] == 40 and "urllib3" in ingest.stderr  # DEBUG was on
        proc = subprocess.Popen(
            cli("--config", config, "serve", "--run-now"), cwd=REPO, env=child_env(env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while len(read_jobs(layout.jobs_log)) < 3 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proc.poll() is None, proc.communicate()[1]
            running = fingerprint(layout.root)  # daemon.json and the daemon's lock holder file exist now
            assert {"state/daemon.json", ".locks/daemon.holder.json"} <= set(running)
            assert_nothing_of(layout.root, [TOKEN.encode()])
            daemon = json.loads(layout.daemon_state.read_text())
            assert daemon["metrics"].startswith("http://127.0.0.1:")
            assert listening_address(int(daemon["metrics"].rsplit(":", 1)[1].split("/")[0])) == "127.0.0.1"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in srv.requests)
    for text in (ingest.stdout, ingest.stderr, out, err):
        assert TOKEN not in text
    assert_nothing_of(layout.root, [TOKEN.encode()])
    assert [j["outcome"] for j in read_jobs(layout.jobs_log)] == ["ok", "ok", "ok"]
    status = run_cli("--config", config, "status", "--json", env=env)
    assert status.returncode == 0 and TOKEN not in status.stdout + status.stderr
    missing = run_cli("--config", config, "status", env={"PAPERSYS_TEST_TOKEN": TOKEN})
    assert missing.returncode == 2
    assert missing.stderr == f"error: {config}: ingest.base_url: environment variable PAPERSYS_TEST_URL is not set\n"
