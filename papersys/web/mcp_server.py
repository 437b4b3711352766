"""``papersys mcp``: the search verbs as MCP tools over stdio, with the official MCP SDK (MCPServer).

stdout carries the protocol, so nothing else may write there: logs go to stderr (cli/console.py). Argument
names of ``search_papers`` follow arxiv-mcp-server (query, max_results, date_from, date_to, categories), so
agents set up for it work against the local copy. No ``from __future__ import annotations``: the SDK reads
the tools' annotations at runtime to build their input schemas.
"""

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field

from papersys import __version__, service
from papersys.config import Config
from papersys.errors import PapersysError
from papersys.search.query import QueryOptions, Searcher

log = logging.getLogger(__name__)
MAX_RESULTS = 100
T = TypeVar("T")

INSTRUCTIONS = (
    "Search a local, complete copy of arXiv's metadata (titles, abstracts, authors, categories) by meaning "
    "and keywords. Results link to https://arxiv.org/abs/<id>. Dates are first-submission dates (YYYY-MM-DD)."
)


def build_server(config: Config, searcher: Searcher | None = None) -> Any:
    """The MCP server with the four tools, sharing one Searcher (the query model loads once)."""
    from mcp.server.mcpserver import MCPServer

    searcher = searcher or Searcher(config)
    server = MCPServer("papersys", version=__version__, instructions=INSTRUCTIONS)

    @server.tool()
    def search_papers(
        *,
        query: Annotated[str, Field(min_length=1, max_length=1000, description="What to look for.")],
        max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS, description="How many papers.")] = 10,
        categories: Annotated[
            list[str] | None, Field(description="Only papers in any of these categories or archives (cs.LG, hep-th).")
        ] = None,
        date_from: Annotated[str | None, Field(description="First submitted on or after (YYYY-MM-DD).")] = None,
        date_to: Annotated[str | None, Field(description="First submitted on or before (YYYY-MM-DD).")] = None,
        mode: Annotated[
            Literal["hybrid", "semantic", "keyword"] | None,
            Field(description="Ranking: keywords and meaning fused (default), meaning only, keywords only."),
        ] = None,
    ) -> dict[str, Any]:
        """Search the local arXiv copy. The query may hold "quoted phrases", author:Name, cat:cs.LG and an
        arXiv id. Returns the papers best first with id, score, title, authors, categories, dates, abstract
        and url."""
        options = QueryOptions(max_results, tuple(categories or ()), date_from, date_to, None, mode)
        return _tool(lambda: service.search(config, query, options, searcher=searcher).to_dict())

    @server.tool()
    def similar_papers(
        paper_id: Annotated[str, Field(max_length=64, description="An arXiv id, e.g. 2401.12345 or hep-th/9901001.")],
        max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS, description="How many papers.")] = 10,
    ) -> dict[str, Any]:
        """The papers nearest in meaning to a stored paper (itself excluded), best first."""
        options = QueryOptions(max_results)
        return _tool(lambda: service.similar(config, paper_id, options, searcher=searcher).to_dict())

    @server.tool()
    def get_paper(
        paper_id: Annotated[str, Field(max_length=64, description="An arXiv id, e.g. 2401.12345 or hep-th/9901001.")],
    ) -> dict[str, Any]:
        """One paper's full metadata (title, authors, abstract, categories, dates, doi, journal_ref, …)."""
        return _tool(lambda: service.paper_detail(config, paper_id, searcher=searcher).to_dict())

    @server.tool()
    def corpus_status() -> dict[str, Any]:
        """How many papers the local copy holds, per-model embedding coverage, index state, last harvests."""
        return _tool(lambda: _status(config))

    return server


def _status(config: Config) -> dict[str, Any]:
    """The `papersys status --json` object, without the per-year tables (an agent needs the totals)."""
    data = service.status(config).to_dict()
    for model in data.get("models", []):
        model.pop("years", None)
    return dict(data)


def _tool(call: Callable[[], T]) -> T:
    """Run one verb; a PapersysError becomes a tool error carrying its one-line message."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return call()
    except PapersysError as exc:
        raise ToolError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def run_mcp(config: Config) -> None:
    """Entry point of ``papersys mcp``: serve until the client closes stdin."""
    from papersys.store.verify import check_data_dir

    check_data_dir(config.data_dir, write=False)
    log.info("papersys MCP server on stdio over %s", config.data_dir)
    build_server(config).run("stdio")
