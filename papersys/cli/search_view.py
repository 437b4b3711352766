"""Renders a SearchResult as a rich table for a terminal (the plain form is ``SearchResult.summary``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from papersys.search.results import SearchResult, authors_line


def render_result(result: SearchResult, console: Console | None = None) -> None:
    console = console or Console()
    filters = ", ".join(f"{k}={v}" for k, v in result.filters.to_dict().items() if v)
    title = f"{result.mode} search ({result.model}) for {result.query!r}: {len(result.hits)} of k={result.k}"
    table = Table(title=title + (f" [{filters}]" if filters else ""), title_justify="left")
    for name, justify in (("#", "right"), ("score", "right"), ("id", "left"), ("date", "left"), ("cat", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("title")
    table.add_column("authors")
    for rank, hit in enumerate(result.hits, start=1):
        paper = hit.paper
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            f"[link={paper.url}]{paper.id}[/link]",
            str(paper.created or ""),
            paper.primary_category,
            paper.title,
            authors_line(paper.authors),
        )
    console.print(table)
    console.print(f"[dim]{result.took_ms:,.0f} ms[/dim]")
