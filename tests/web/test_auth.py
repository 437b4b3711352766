"""Security of the API: the bearer token (constant-time, every path but /healthz and the page's files),
an exposed address without a token refused at start (exit 2, one line), and `papersys api` as a user runs
it: it serves, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.web_support import Api, serve, store_config

from papersys.config import config_from_mapping

TOKEN = "s3cret-token_42"


@pytest.fixture(scope="module")
def locked(web_store: Path) -> Iterator[Api]:
    yield from serve(store_config(web_store, token=TOKEN))


@pytest.mark.parametrize("header", [None, "", "Bearer", f"Bearer {TOKEN}x", f"bearer {TOKEN}", TOKEN, f"Basic {TOKEN}"])
def test_without_the_right_token_every_api_path_is_401(locked: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for path in ("/api/search?q=graphs", "/api/papers/2401.00001", "/api/status", "/openapi.json", "/api/nothing"):
        response = locked.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"].startswith("missing or wrong bearer token")
        assert TOKEN not in response.text


def test_with_the_token_the_api_answers_and_health_and_page_need_none(locked: Api) -> None:
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert locked.get("/api/search", {"q": "graphs", "k": 2}, headers=good).json()["k"] == 2
    assert locked.get("/api/status", headers=good).status_code == 200
    assert locked.get("/healthz").json()["status"] == "ok"
    assert locked.get("/").status_code == 200 and locked.get("/docs").status_code == 200


def test_an_env_reference_supplies_the_token(web_store: Path) -> None:
    raw = {"data_dir": "data", "api": {"port": 0, "token": "env:PAPERSYS_TEST_API_TOKEN"}}
    config = config_from_mapping(raw, base_dir=web_store, env={"PAPERSYS_TEST_API_TOKEN": TOKEN})
    assert config.api.token.get_secret_value() == TOKEN and TOKEN not in repr(config)
    for api in serve(config):
        assert api.get("/api/status").status_code == 401
        assert api.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def papersys(root: Path, *args: str, api: str) -> list[str]:
    config = root / "api.toml"
    config.write_text(f'data_dir = "{root / "data"}"\n[metrics]\nport = 0\n[api]\n{api}\n')
    return [sys.executable, "-m", "papersys", "--config", str(config), *args]


@pytest.mark.parametrize(
    ("host", "exposed"),
    [("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("localhost", False), ("0.0.0.0", True),
     ("192.168.1.20", True), ("::", True), ("example.org", True)],
)  # fmt: skip
def test_which_hosts_need_a_token(host: str, exposed: bool) -> None:
    from papersys.config import ApiConfig
    from papersys.errors import UsageError
    from papersys.web.server import check_exposure

    check_exposure(ApiConfig(host=host, token=TOKEN))  # with a token, any host
    if exposed:
        with pytest.raises(UsageError, match="not a loopback address"):
            check_exposure(ApiConfig(host=host))
    else:
        check_exposure(ApiConfig(host=host))


@pytest.mark.parametrize(("command", "host"), [("api", "0.0.0.0"), ("serve", "::")])
def test_an_exposed_host_without_a_token_is_refused_with_exit_2(tmp_path: Path, command: str, host: str) -> None:
    (tmp_path / "data").mkdir()
    proc = subprocess.run(
        papersys(tmp_path, command, api=f'host = "{host}"\nport = 0'), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: [api] host '{host}' is not a loopback address and [api] token is empty: set a token "
        '(token = "env:NAME" reads it from the environment) or bind 127.0.0.1'
    ]
    assert not (tmp_path / "data" / "state" / "daemon.json").exists()


@pytest.mark.slow
def test_papersys_api_serves_until_sigterm_and_stops_cleanly(web_store: Path, tmp_path: Path) -> None:
    from support.web_support import copy_store

    root = copy_store(web_store, tmp_path)
    argv = papersys(root, "api", api="port = 0")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stderr is not None
        url = ""
        for line in proc.stderr:  # the log line naming the address; the process either logs it or exits
            if "API and search page at " in line:
                url = line.rsplit(" at ", 1)[1].strip()
                break
        assert url.startswith("http://127.0.0.1:"), proc.poll()
        result = requests.get(url + "/api/search", params={"q": "neural networks", "k": 3}, timeout=120).json()
        assert len(result["results"]) == 3
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == f"papersys API at {url} stopped" and "Traceback" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/healthz", timeout=10)
