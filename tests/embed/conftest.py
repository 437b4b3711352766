"""Embedding test fixtures: the real all-MiniLM-L6-v2 engine, loaded once per session, and real infinity-emb
servers of the same model for the HTTP engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.embedding import CountingEngine
from support.infinity import FaultProxy, InfinityServer

from papersys.config import DEFAULT_MODEL_NAME
from papersys.embed.engines.base import Engine


@pytest.fixture
def counting(minilm: Engine) -> CountingEngine:
    return CountingEngine(minilm)


@pytest.fixture(scope="session")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InfinityServer, InfinityServer]]:
    """Two real infinity-emb servers of the bundled MiniLM, started together once per session: the first
    serves every HTTP-engine test, the second is there to be killed mid-run."""
    from papersys.embed.engines.base import resolve_model_path

    logs = tmp_path_factory.mktemp("infinity")
    path = resolve_model_path(DEFAULT_MODEL_NAME)
    servers = [InfinityServer(path, logs / f"{name}.log") for name in ("main", "victim")]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def proxy(infinity: tuple[InfinityServer, InfinityServer]) -> Iterator[FaultProxy]:
    """A loopback proxy in front of the main server, answering injected faults before forwarding."""
    front = FaultProxy(infinity[0].base_url)
    yield front
    front.close()
