"""Renders a StatusReport as rich tables for a terminal (the plain form is ``StatusReport.summary``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from papersys.status import ModelStatus, StatusReport, audit_line, freshness_line, text_index_state


def render_status(report: StatusReport, console: Console | None = None) -> None:
    console = console or Console()
    total = report.disk_bytes.get("total", 0)
    console.print(f"[bold]papersys[/bold] {report.data_dir}  ({total / 2**30:.2f} GiB on disk)")
    console.print(_years_table(report))
    console.print(_coverage_table(report.models))
    console.print(_runs_table(report))  # problems go to stderr, once, from the CLI


def _years_table(report: StatusReport) -> Table:
    models = [m for m in report.models if not m.problem]
    table = Table(title=f"papers: {report.total_papers:,}", title_justify="left")
    table.add_column("year", justify="right")
    table.add_column("papers", justify="right")
    for m in models:
        table.add_column(f"{m.alias} valid", justify="right")
        table.add_column(f"{m.alias} gaps", justify="right")
    for year in sorted(set(report.papers) | {y for m in models for y in m.years}, reverse=True):
        row = [str(year), f"{report.papers.get(year, 0):,}"]
        for m in models:
            cov = m.years.get(year, {})
            gaps = cov.get("missing", 0) + cov.get("stale", 0) + cov.get("invalid", 0)
            row += [f"{cov.get('valid', 0):,}", f"[red]{gaps:,}[/red]" if gaps else "0"]
        table.add_row(*row)
    return table


def _coverage_table(models: tuple[ModelStatus, ...]) -> Table:
    table = Table(title="embedding coverage", title_justify="left")
    for col in ("model", "valid", "missing", "stale", "invalid", "orphans", "coverage", "indexed"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in models:
        if m.problem:
            table.add_row(m.alias, f"[red]{m.problem}[/red]", "", "", "", "", "", "")
            continue
        name = m.alias if m.enabled else f"{m.alias} (disabled)"
        counts = (m.valid, m.missing, m.stale, m.invalid, m.orphans)
        table.add_row(name, *(f"{n:,}" for n in counts), f"{m.coverage:.1%}", _indexed(m))
    return table


def _indexed(m: ModelStatus) -> str:
    index = m.index
    if not index.get("updated_at"):
        return "[yellow]no index[/yellow]"
    behind = "" if index.get("current") else f" [yellow](behind {index.get('behind', 0):,})[/yellow]"
    return f"{index.get('indexed', 0):,}{behind}"


def _runs_table(report: StatusReport) -> Table:
    table = Table(title="harvest and jobs", title_justify="left")
    table.add_column("what")
    table.add_column("state")
    for key, mark in sorted(report.watermarks.items()):
        table.add_row(f"watermark {key}", f"{mark['watermark']} ({mark['source']}, updated {mark['updated_at']})")
    if report.window_in_progress:
        w = report.window_in_progress
        table.add_row("unfinished window", f"[yellow]{w['set']} {w['start']}..{w['until']}[/yellow]")
    for job, run in sorted(report.last_runs.items()):
        style = {"ok": "green", "error": "red"}.get(str(run.get("outcome")), "yellow")
        error = f" — {run['error']}" if run.get("error") else ""
        table.add_row(
            f"last {job}", f"[{style}]{run.get('outcome')}[/{style}] {run.get('end')} ({run.get('trigger')}){error}"
        )
    current = report.text_index.get("current") and report.text_index.get("updated_at")
    text_state = text_index_state(report.text_index)
    table.add_row("full-text index", text_state if current else f"[yellow]{text_state}[/yellow]")
    table.add_row("freshness", freshness_line(report.freshness))
    audit = audit_line(report.audit)
    table.add_row("audit", audit if report.audit.get("clean") else f"[yellow]{audit}[/yellow]")
    table.add_row("daemon", _daemon_line(report))
    return table


def _daemon_line(report: StatusReport) -> str:
    d = report.daemon
    if d.state == "running":
        nxt = ", ".join(f"{k} {v}" for k, v in sorted(d.next_runs.items()) if v) or "none"
        return f"[green]running[/green] pid {d.pid} since {d.started}; next: {nxt}; {d.metrics}"
    if d.state == "stale":
        return f"[yellow]not running[/yellow] (stale daemon.json of pid {d.pid})"
    return "not running"
