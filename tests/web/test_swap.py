"""The API while autopatch and the full-text update swap the indexes under it: 8 threads of requests, no
error, every response a complete result object, and afterwards the new papers are found without a
restart (the long-lived Searcher reopens an index whose manifest changed)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests
from support.builders import frame
from support.search_support import paper_rows
from support.web_support import STORED, assert_result, copy_store, serve, store_config

from papersys import service
from papersys.search.manifest import read_index_manifest
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

THREADS = 8
PER_THREAD = 25  # at least; each thread keeps asking until the writer is done


@pytest.mark.slow
def test_requests_from_8_threads_while_autopatch_swaps_the_index(
    web_store: Path, tmp_path: Path, web_papers: pl.DataFrame, factory: object
) -> None:
    config = store_config(copy_store(web_store, tmp_path))
    layout = Layout(config.data_dir)
    before = read_index_manifest(layout, "minilm")
    assert before is not None and before.live == STORED
    added = web_papers.slice(STORED, 40)
    old = list(web_papers.head(STORED).iter_rows(named=True))
    writer_done = threading.Event()
    errors: list[str] = []
    asker = Asker(old, writer_done, errors)

    def write() -> None:
        try:
            upsert(layout, frame(*paper_rows(added)))
            service.embed_autopatch(config, engine_factory=factory)  # type: ignore[arg-type]
            service.index(config, text_only=True)
        except Exception as exc:
            errors.append(f"writer: {exc!r}")
        finally:
            writer_done.set()

    for api in serve(config):
        writer = threading.Thread(target=write)
        askers = [threading.Thread(target=asker.run, args=(n, api.url)) for n in range(THREADS)]
        writer.start()
        for thread in askers:
            thread.start()
        for thread in [writer, *askers]:
            thread.join()
        after = read_index_manifest(layout, "minilm")
        assert after is not None and after.live == STORED + 40 and after != before
        # the same server, not restarted, now finds the new papers by meaning and by keywords
        found = sum(
            row["id"] in [h["id"] for h in api.get("/api/search", {"q": row["title"], "k": 3}).json()["results"]]
            for row in added.iter_rows(named=True)
        )
        assert found >= 38
        assert api.get("/healthz").json()["indexes"]["minilm"]["indexed"] == STORED + 40
    assert errors == []
    assert sum(asker.counts) >= THREADS * PER_THREAD
    assert sum(asker.during) >= THREADS  # the requests did overlap the swap


class Asker:
    """One client thread's loop: searches (semantic, default mode) and similar, each response checked."""

    def __init__(self, papers: list[dict[str, Any]], writer_done: threading.Event, errors: list[str]) -> None:
        self.papers, self.writer_done, self.errors = papers, writer_done, errors
        self.counts = [0] * THREADS
        self.during = [0] * THREADS  # requests sent while the writer was still working

    def request(self, n: int, i: int) -> tuple[str, dict[str, Any], int]:
        paper = self.papers[(n * 31 + i) % len(self.papers)]
        if i % 3 == 0:
            return "/api/search", {"q": paper["title"], "k": 5, "mode": "semantic"}, 5
        if i % 3 == 1:
            return "/api/search", {"q": paper["title"], "k": 4}, 4
        return f"/api/similar/{paper['id']}", {"k": 3}, 3

    def run(self, n: int, url: str) -> None:
        session = requests.Session()
        i = 0
        while i < PER_THREAD or not self.writer_done.is_set():
            path, params, k = self.request(n, i)
            self.during[n] += not self.writer_done.is_set()
            try:
                response = session.get(url + path, params=params, timeout=300)
                body: Any = response.json()
                assert response.status_code == 200, body
                assert_result(body, k)
            except Exception as exc:
                self.errors.append(f"{path} {params}: {exc!r}")
            self.counts[n] += 1
            i += 1
