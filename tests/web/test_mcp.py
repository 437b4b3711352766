"""`papersys mcp` driven by the MCP SDK's own stdio client: the four tools with arxiv-mcp-server's argument
names, real searches over real papers, one-line tool errors, and a clean stdout (the protocol's)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from support.web_support import STORED

TOOLS = {"search_papers", "similar_papers", "get_paper", "corpus_status"}


async def session_run(config: Path, errlog: Any, query: str, paper_id: str) -> dict[str, Any]:
    """List the tools and call each once; return what came back."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "papersys", "--config", str(config), "mcp"],
        env={k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "OMP_", "TOKENIZERS_"))},
    )
    out: dict[str, Any] = {}
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        out["tools"] = {tool.name: tool for tool in (await session.list_tools()).tools}
        out["search"] = await session.call_tool(
            "search_papers",
            {"query": query, "max_results": 3, "categories": ["cs.LG", "cs.CV"]},
        )
        out["paper"] = await session.call_tool("get_paper", {"paper_id": paper_id + "v2"})
        out["similar"] = await session.call_tool("similar_papers", {"paper_id": paper_id, "max_results": 4})
        out["status"] = await session.call_tool("corpus_status", {})
        out["unknown"] = await session.call_tool("get_paper", {"paper_id": "2501.99999"})
        out["bad"] = await session.call_tool("search_papers", {"query": "x", "date_from": "2024-13-40"})
    return out


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict)
    assert json.loads(result.content[0].text) == data  # the same object as text, for clients without structure
    return data


@pytest.mark.slow
def test_the_sdk_client_lists_the_tools_and_finds_the_paper(
    web_store: Path, web_papers: pl.DataFrame, tmp_path: Path
) -> None:
    paper = next(p for p in web_papers.head(STORED).iter_rows(named=True) if {"cs.LG", "cs.CV"} & set(p["categories"]))
    title, paper_id = paper["title"], paper["id"]
    config = tmp_path / "mcp.toml"
    config.write_text(f'data_dir = "{web_store / "data"}"\n[search]\nann_min_rows = 0\ntail_rows = 0\n')
    with tempfile.TemporaryFile("w+") as errlog:
        out = asyncio.run(session_run(config, errlog, title, paper_id))
        errlog.seek(0)
        log = errlog.read()
    assert set(out["tools"]) == TOOLS, log
    schema = out["tools"]["search_papers"].input_schema["properties"]
    assert {"query", "max_results", "categories", "date_from", "date_to", "mode"} == set(schema)
    search = structured(out["search"])
    assert search["results"][0]["id"] == paper_id and len(search["results"]) == 3
    assert search["filters"]["categories"] == ["cs.LG", "cs.CV"]
    got = structured(out["paper"])
    assert got["id"] == paper_id and got["title"] == title and got["models"] == ["minilm"]
    similar = structured(out["similar"])
    assert len(similar["results"]) == 4 and paper_id not in [h["id"] for h in similar["results"]]
    assert structured(out["status"])["total_papers"] == STORED
    for name, message in (("unknown", "paper 2501.99999 is not in the store"), ("bad", "2024-13-40")):
        result = out[name]
        assert result.is_error and message in result.content[0].text and "\n" not in result.content[0].text
    assert "papersys MCP server on stdio" in log  # logging went to stderr (a stray stdout line breaks the client)
