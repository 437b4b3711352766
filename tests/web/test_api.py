"""The HTTP API on a real uvicorn over real papers and the real MiniLM: the result objects, filters,
ids, the JSON errors (400/404/405/422/500), the page and docs, and the same answers as the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from support.expected import first_version_bound
from support.web_support import STORED, Api, assert_result, store_config

from papersys import service
from papersys.errors import UsageError
from papersys.search.query import QueryOptions, Searcher
from papersys.web.server import ApiServer


@pytest.fixture(scope="module")
def stored(web_papers: pl.DataFrame) -> list[dict[str, Any]]:
    return list(web_papers.head(STORED).iter_rows(named=True))


def test_search_returns_the_result_object_and_finds_a_paper_by_its_title(
    api: Api, stored: list[dict[str, Any]]
) -> None:
    found = 0
    for paper in stored[:20]:
        response = api.get("/api/search", {"q": paper["title"], "k": 3, "mode": "semantic"})
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        body = response.json()
        assert_result(body, 3)
        assert body["mode"] == "semantic" and body["model"] == "minilm" and body["query"] == paper["title"]
        found += paper["id"] in [hit["id"] for hit in body["results"]]
    assert found >= 19
    default = api.get("/api/search", {"q": "graph neural networks"}).json()
    assert default["mode"] == "hybrid" and len(default["results"]) == 10  # both indexes exist: hybrid
    keyword = api.get("/api/search", {"q": stored[5]["title"], "mode": "keyword", "k": 1}).json()
    assert keyword["mode"] == "keyword" and keyword["results"][0]["id"] == stored[5]["id"]


def test_the_api_answers_what_the_service_and_the_cli_answer(api: Api, web_store: Path) -> None:
    config = store_config(web_store)
    params = {"q": "reinforcement learning for robots", "k": 7, "mode": "hybrid", "category": "cs.LG"}
    body = api.get("/api/search", params).json()
    expected = service.search(config, params["q"], QueryOptions(7, ("cs.LG",), mode="hybrid")).to_dict()
    body.pop("took_ms"), expected.pop("took_ms")
    assert body == expected


def test_filters_categories_repeat_and_dates_hold(api: Api, stored: list[dict[str, Any]]) -> None:
    params = [("q", "deep learning"), ("k", "10"), ("category", "cs.CL"), ("category", "cs.CV"), ("mode", "semantic")]
    body = api.get("/api/search", params).json()
    assert_result(body, 10)
    assert body["filters"]["categories"] == ["cs.CL", "cs.CV"]
    assert all({"cs.CL", "cs.CV"} & set(hit["categories"]) for hit in body["results"])
    dates = sorted(p["created"] for p in stored)
    since, until = dates[len(dates) // 3].isoformat(), dates[2 * len(dates) // 3].isoformat()
    body = api.get("/api/search", {"q": "deep learning", "since": since, "until": until, "k": 5}).json()
    assert body["filters"]["since"] == since and len(body["results"]) == 5
    assert all(since <= hit["created"] <= until for hit in body["results"])
    archive = api.get("/api/search", {"q": "statistics", "category": "stat", "k": 5}).json()
    assert archive["results"] and all(any(c.startswith("stat.") for c in h["categories"]) for h in archive["results"])


def test_similar_excludes_the_paper_and_takes_versions_and_filters(api: Api, stored: list[dict[str, Any]]) -> None:
    paper = stored[3]
    body = api.get(f"/api/similar/{paper['id']}v2", {"k": 5}).json()
    assert_result(body, 5)
    assert body["query"] == paper["id"] and body["mode"] == "semantic"
    assert paper["id"] not in [hit["id"] for hit in body["results"]]
    filtered = api.get(f"/api/similar/{paper['id']}", {"k": 4, "category": "cs.CV"}).json()
    assert len(filtered["results"]) == 4 and all("cs.CV" in h["categories"] for h in filtered["results"])


def test_paper_has_its_metadata_and_models(api: Api, stored: list[dict[str, Any]]) -> None:
    paper = stored[9]
    body = api.get(f"/api/papers/{paper['id']}v1").json()
    assert body["id"] == paper["id"] and body["title"] == paper["title"] and body["models"] == ["minilm"]
    created = first_version_bound(paper["id"], paper["created"])  # the store holds first-version dates
    assert body["authors"] == list(paper["authors"]) and body["created"] == str(created)
    assert {"doi", "journal_ref", "comments", "license", "abstract", "url"} <= set(body)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/papers/hep-th/9901001", 404, "paper hep-th/9901001 is not in the store"),  # old-style id: a path
        ("/api/papers/2501.99999", 404, "paper 2501.99999 is not in the store"),
        ("/api/similar/2501.99999", 404, "paper 2501.99999 is not in the store"),
        ("/api/papers/..%2F..%2Fetc%2Fpasswd", 400, "not an arXiv id"),
        ("/api/papers/../../etc/passwd", 404, "Not Found"),  # normalised away by the client: no such route
        ("/api/similar/2401.1", 400, "not an arXiv id"),
        ("/api/search?q=x&category=not+a+category", 400, "is not an arXiv category"),
        ("/api/search?q=x&model=nope", 400, "unknown model alias 'nope'"),
        ("/api/search?q=x&since=2024-05-01&until=2024-01-01", 400, "is after"),
        ("/api/search?q=x&k=0", 422, "query.k: Input should be greater than or equal to 1"),
        ("/api/search?q=x&k=101", 422, "query.k: Input should be less than or equal to 100"),
        ("/api/search?q=x&k=ten", 422, "query.k"),
        ("/api/search?q=" + "x" * 1001, 422, "query.q: String should have at most 1000 characters"),
        ("/api/search", 422, "query.q: Field required"),
        ("/api/search?q=x&mode=fuzzy", 422, "query.mode"),
        ("/api/search?q=x&since=yesterday", 422, "query.since"),
        ("/api/search?q=x&catgory=cs.LG", 422, "query.catgory: unknown query parameter"),
        ("/api/papers/2401.00001?verbose=1", 422, "query.verbose: unknown query parameter"),
        ("/api/nothing", 404, "Not Found"),
    ],
)
def test_errors_are_one_line_json_with_a_fitting_status(api: Api, path: str, status: int, message: str) -> None:
    response = api.get(path)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and message in body["error"] and "\n" not in body["error"]
    assert "Traceback" not in response.text


def test_only_get_is_served(api: Api) -> None:
    response = api.session.post(api.url + "/api/search?q=x", timeout=30)
    assert response.status_code == 405 and response.json()["error"] == "Method Not Allowed"
    assert "access-control-allow-origin" not in {h.lower() for h in response.headers}  # no CORS
    preflight = api.session.options(api.url + "/api/search", headers={"Origin": "http://evil.example"}, timeout=30)
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers


def test_status_healthz_page_and_offline_docs(api: Api, web_store: Path) -> None:
    status = api.get("/api/status").json()
    assert status["total_papers"] == STORED and status["models"][0]["alias"] == "minilm"
    assert status["models"][0]["valid"] == STORED and status["data_dir"] == str(web_store / "data")
    health = api.get("/healthz").json()
    assert health == {"status": "ok", "indexes": {"minilm": {"indexed": STORED}}, "text_index": True, "problems": []}
    page = api.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    docs = api.get("/docs")
    assert docs.status_code == 200 and "GET /api/search" in docs.text and "k" in docs.text
    assert "http" not in docs.text.replace("https://arxiv.org", "")  # nothing fetched from elsewhere
    spec = api.get("/openapi.json").json()
    assert {"/api/search", "/api/similar/{paper_id}", "/api/papers/{paper_id}", "/api/status", "/healthz"} <= set(
        spec["paths"]
    )
    assert all(set(methods) == {"get"} for methods in spec["paths"].values())
    assert "<code>SearchResult</code> {model, mode, query, k, filters, took_ms, results}" in docs.text


def test_the_openapi_schemas_describe_what_the_routes_send(api: Api, stored: list[dict[str, Any]]) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    result = api.get("/api/search", {"q": "robots", "k": 1}).json()
    paper = api.get(f"/api/papers/{stored[0]['id']}").json()
    error = api.get("/api/papers/2501.99999").json()
    for name, body in (("SearchResult", result), ("Hit", result["results"][0]), ("ResultFilters", result["filters"]),
                       ("PaperDetail", paper), ("Health", api.get("/healthz").json()), ("Error", error)):  # fmt: skip
        assert set(schemas[name]["properties"]) == set(body), name


class BrokenSearcher(Searcher):
    """A fault injected into the server: every search fails with an unexpected error."""

    def search(self, text: str, query: Any) -> Any:
        raise RuntimeError("secret internals")


def test_an_unexpected_error_is_a_logged_500_without_details(web_store: Path, caplog: pytest.LogCaptureFixture) -> None:
    import requests

    config = store_config(web_store)
    server = ApiServer(config, searcher=BrokenSearcher(config))
    server.start()
    try:
        session = requests.Session()
        response = session.get(server.url + "/api/search", params={"q": "x"}, timeout=60)
        after = session.get(server.url + "/healthz", timeout=60)  # the same connection still serves
    finally:
        server.stop()
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (logged by the server)", "detail": None}
    assert after.status_code == 200
    assert caplog.text.count("RuntimeError: secret internals") == 1  # logged once, for the operator


def test_a_taken_port_is_one_error_line(api: Api, web_store: Path) -> None:
    from papersys.errors import PapersysError

    port = int(api.url.rsplit(":", 1)[1])
    with pytest.raises(PapersysError, match=f"cannot serve the API on 127.0.0.1:{port}"):
        ApiServer(store_config(web_store, port=port)).start()


def test_exposed_host_without_token_is_refused_before_binding(web_store: Path) -> None:
    with pytest.raises(UsageError, match="not a loopback address and \\[api\\] token is empty"):
        ApiServer(store_config(web_store, host="0.0.0.0"))
