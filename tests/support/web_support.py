"""Helpers of the web tests: the config they serve, store copies, a running API server with a client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from papersys.config import Config, config_from_mapping
from papersys.web.server import ApiServer
from support.search_support import HIT_KEYS, RESULT_KEYS, make_config

STORED = 160  # papers in the web tests' store; the next 40 of the fixture are added by the swap test


def store_config(root: Path, **api: object) -> Config:
    """The config the web tests serve: an ANN index even for a few hundred papers, the API on any port."""
    base = make_config(root, ann_min_rows=0, tail_rows=0)
    raw = {"data_dir": "data", "search": base.search.model_dump(), "api": {"port": 0, **api}}
    return config_from_mapping(raw, base_dir=root)


def copy_store(web_store: Path, to: Path) -> Path:
    shutil.copytree(web_store / "data", to / "data", symlinks=True)
    return to


class Api:
    """A running server and a client for it."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.url = server.url
        self.session = requests.Session()

    def get(self, path: str, params: object = None, **kwargs: object) -> requests.Response:
        return self.session.get(self.url + path, params=params, timeout=120, **kwargs)  # type: ignore[arg-type]


def serve(config: Config) -> Iterator[Api]:
    server = ApiServer(config)
    server.start()
    try:
        yield Api(server)
    finally:
        server.stop()


def assert_result(body: dict[str, Any], k: int) -> None:
    """A complete DESIGN §9 result object with k hits."""
    assert set(body) == RESULT_KEYS and body["k"] == k and len(body["results"]) == k
    assert set(body["filters"]) == {"categories", "since", "until"}
    for hit in body["results"]:
        assert set(hit) == HIT_KEYS and hit["url"] == "https://arxiv.org/abs/" + hit["id"] and hit["title"]
    scores = [hit["score"] for hit in body["results"]]
    if body["mode"] == "semantic":
        assert scores == sorted(scores, reverse=True)
