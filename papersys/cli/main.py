"""The ``papersys`` command line: parse options, call one service function, render its report."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from papersys import __version__
from papersys.cli.console import INTERRUPTED_EXIT, print_error, progress_runtime, report_text, setup_logging
from papersys.config import Config, load_config
from papersys.errors import PapersysError, UsageError
from papersys.report import Report

if TYPE_CHECKING:
    from papersys.search.results import SearchResult

log = logging.getLogger("papersys")


@dataclass
class _State:
    config_path: str | None
    data_dir: str | None
    _config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            config = load_config(self.config_path)
            if self.data_dir:
                config = config.model_copy(update={"data_dir": Path(self.data_dir).resolve()})
            setup_logging(config.log_level)
            self._config = config
        return self._config


def _emit(report: Report, as_json: bool) -> None:
    for line in report_text(report, as_json=as_json):
        click.echo(line)


def _parse_date(_ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD", param=param) from None


F = TypeVar("F", bound=Callable[..., Any])


def _datestamp_range(from_help: str) -> Callable[[F], F]:
    """``--from``, ``--until`` and ``--set``: the OAI range of ``ingest`` and ``audit``."""

    def decorate(command: F) -> F:
        command = click.option(
            "--set", "sets", multiple=True, metavar="SPEC", help="OAI set, e.g. cs or physics:hep-th (repeatable)."
        )(command)
        command = click.option(
            "--until", callback=_parse_date, metavar="YYYY-MM-DD", help="Last datestamp (default: today)."
        )(command)
        return click.option("--from", "start", callback=_parse_date, metavar="YYYY-MM-DD", help=from_help)(command)

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="papersys")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PAPERSYS_CONFIG",
    help="TOML config file (default: embedded defaults; env PAPERSYS_CONFIG).",
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Override data_dir from the config.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, data_dir: str | None) -> None:
    """Keep a complete, current copy of arXiv metadata and paper embeddings on this host."""
    ctx.obj = _State(config_path, data_dir)


@cli.command()
@_datestamp_range("First datestamp to harvest (default: watermark minus overlap_days).")
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bulk-load a Kaggle arxiv-metadata-oai-snapshot.json (.gz/.zst) instead of harvesting.",
)
@click.option("--feeds", is_flag=True, help="Fetch the announcement feeds ([ingest] feeds): this evening's new papers.")
@click.option("--dry-run", is_flag=True, help="Harvest and count, but write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def ingest(
    state: _State,
    *,
    start: date | None,
    until: date | None,
    sets: tuple[str, ...],
    snapshot: Path | None,
    feeds: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Harvest arXiv metadata over OAI-PMH (incremental by watermark) into data/metadata/."""
    from papersys import service

    if snapshot is not None and (start or until or sets):
        raise UsageError("--snapshot cannot be combined with --from, --until or --set")
    if feeds and (snapshot is not None or start or until or sets or dry_run):
        raise UsageError("--feeds cannot be combined with --snapshot, --from, --until, --set or --dry-run")
    with progress_runtime() as runtime:
        if feeds:
            report: Any = service.ingest_feeds(state.config(), runtime=runtime)
        elif snapshot is not None:
            report = service.ingest_snapshot(state.config(), snapshot, dry_run=dry_run, runtime=runtime)
        else:
            report = service.ingest(
                state.config(), start=start, until=until, sets=sets or None, dry_run=dry_run, runtime=runtime
            )
    _emit(report, as_json)


@cli.command()
@_datestamp_range("First datestamp to audit (default: until minus ingest.audit_days - 1).")
@click.option("--repair", is_flag=True, help="Fetch and store exactly the records found missing, stale or deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, every id included.")
@click.pass_context
def audit(
    ctx: click.Context,
    *,
    start: date | None,
    until: date | None,
    sets: tuple[str, ...],
    repair: bool,
    as_json: bool,
) -> None:
    """Compare arXiv's identifier list (ListIdentifiers) with the store: papers missing, stale or deleted
    upstream. Exit status 0 when clean, 1 when gaps remain; the result is kept in data/state/audit.json."""
    from papersys import service

    with progress_runtime() as runtime:
        report = service.audit(
            ctx.obj.config(), start=start, until=until, sets=sets or None, repair=repair, runtime=runtime
        )
    _emit(report, as_json)
    ctx.exit(0 if report.clean else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema: devdoc/status.md).")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show papers per year, embedding coverage, harvest watermark, last runs and the daemon's state."""
    from papersys import service

    report = service.status(ctx.obj.config())
    if not as_json and sys.stdout.isatty():
        from papersys.cli.status_view import render_status

        render_status(report)
    else:
        _emit(report, as_json)
    if report.problems:  # the report still shows what is fine; stderr says what is not, one line each
        for problem in report.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(1)


@cli.command()
@click.option("--run-now", is_flag=True, help="Run ingest, then embed autopatch, once at start.")
@click.pass_obj
def serve(state: _State, run_now: bool) -> None:
    """Run the daemon: scheduled ingest + autopatch, Prometheus metrics, the HTTP API and search page ([api]);
    stops cleanly on SIGTERM/SIGINT."""
    from papersys.daemon.scheduler import run_daemon

    outcomes = run_daemon(state.config(), run_now=run_now)
    click.echo(f"papersys daemon stopped after {len(outcomes)} job run(s)")


@cli.command()
@click.pass_obj
def api(state: _State) -> None:
    """Serve the read-only HTTP API and search page alone (no scheduler), e.g. over a replica of a data dir."""
    from papersys.web.server import run_api

    url = run_api(state.config())
    click.echo(f"papersys API at {url} stopped")


@cli.command()
@click.pass_obj
def mcp(state: _State) -> None:
    """Serve search to LLM agents over MCP on stdin/stdout (tools: devdoc/api.md); logs go to stderr."""
    from papersys.web.mcp_server import run_mcp

    run_mcp(state.config())


@cli.group()
def embed() -> None:
    """Embed papers: fill every model's gaps (autopatch) or show them (backlog)."""


@embed.command()
@click.option("--model", "models", multiple=True, metavar="ALIAS", help="Only this model (repeatable).")
@click.option("--limit", type=click.IntRange(min=0), help="Embed at most N papers per model.")
@click.option("--dry-run", is_flag=True, help="Count what would be embedded and pruned; write nothing.")
@click.option("--reembed", is_flag=True, help="Accept a changed model/template/dim: re-embed every paper.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def autopatch(
    state: _State, *, models: tuple[str, ...], limit: int | None, dry_run: bool, reembed: bool, as_json: bool
) -> None:
    """Embed every paper that lacks a valid, current vector (newest years first)."""
    from papersys import service

    with progress_runtime() as runtime:
        report = service.embed_autopatch(
            state.config(), models=models, limit=limit, dry_run=dry_run, reembed=reembed, runtime=runtime
        )
    _emit(report, as_json)


@embed.command()
@click.option("--model", "models", multiple=True, metavar="ALIAS", help="Only this model (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def backlog(state: _State, models: tuple[str, ...], as_json: bool) -> None:
    """Show the gaps per model and year (missing / stale / invalid) and orphans; change nothing."""
    from papersys import service

    _emit(service.embed_backlog(state.config(), models=models), as_json)


@cli.group()
def model() -> None:
    """Make models: distil a fast static model from a configured one."""


def _dims(_ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value.lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of dimensions or 'none'", param=param) from None


@model.command()
@click.option("--from", "source", required=True, metavar="ALIAS", help="The configured sentence_transformer model.")
@click.option("--to", "target", required=True, metavar="ALIAS", help="The new model's alias (names its directory).")
@click.option(
    "--dims", default="256", show_default=True, callback=_dims, help="PCA dimensions, or 'none' to keep the source's."
)
@click.option(
    "--vocabulary-from-store",
    "vocabulary",
    type=int,
    default=0,
    metavar="N",
    help="Add the N most frequent words of the stored titles and abstracts to the vocabulary.",
)
@click.option(
    "--no-subwords", is_flag=True, help="Word-level: only the store's N words (quick to distil, worse: for trials)."
)
@click.option("--force", is_flag=True, help="Replace an existing model of this alias.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def distill(
    state: _State,
    *,
    source: str,
    target: str,
    dims: int | None,
    vocabulary: int,
    no_subwords: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Distil a static model2vec model into <data_dir>/models/ALIAS and print the config block that uses it."""
    from papersys import service
    from papersys.embed.distill import DistillOptions

    options = DistillOptions(dims=dims, vocabulary_from_store=vocabulary, subwords=not no_subwords, force=force)
    with progress_runtime() as runtime:
        report = service.distill_model(state.config(), source=source, target=target, options=options, runtime=runtime)
    _emit(report, as_json)


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """-k, --category, --since, --until, --model and --json, shared by search and similar."""
    options = [
        click.option("-k", "k", type=int, default=10, show_default=True, help="How many papers (1-1000)."),
        click.option(
            "--category", "categories", multiple=True, metavar="CAT", help="Only papers in CAT (repeatable: any of)."
        ),
        click.option("--since", metavar="YYYY-MM-DD", help="Only papers first submitted on or after this day."),
        click.option("--until", metavar="YYYY-MM-DD", help="Only papers first submitted on or before this day."),
        click.option("--model", metavar="ALIAS", help="Search this model's vectors (default: the first enabled)."),
        click.option("--json", "as_json", is_flag=True, help="Print the result object as JSON (devdoc/search.md)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _show_result(result: SearchResult, as_json: bool) -> None:
    if not as_json and sys.stdout.isatty():
        from papersys.cli.search_view import render_result

        render_result(result)
    else:
        _emit(result, as_json)


@cli.command()
@click.argument("text")
@_filter_options
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "semantic", "keyword"]),
    help="Rank by keywords and meaning fused, meaning only, or keywords only (default: hybrid when both "
    "indexes exist).",
)
@click.pass_obj
def search(state: _State, /, text: str, *, as_json: bool, **options: Any) -> None:
    """Find the stored papers that best answer TEXT.

    TEXT may hold "quoted phrases", author:Name (author:"First Last"), cat:cs.LG and id:2401.12345; an
    arXiv id or arxiv.org URL alone returns that paper first.
    """
    from papersys import service
    from papersys.search.query import QueryOptions

    _show_result(service.search(state.config(), text, QueryOptions(**options)), as_json)


@cli.command()
@click.argument("paper_id", metavar="ID")
@_filter_options
@click.pass_obj
def similar(state: _State, /, paper_id: str, *, as_json: bool, **options: Any) -> None:
    """Find the papers nearest to the stored paper ID (2401.12345, 2401.12345v3, hep-th/9901001)."""
    from papersys import service
    from papersys.search.query import QueryOptions

    _show_result(service.similar(state.config(), paper_id, QueryOptions(**options)), as_json)


@cli.command()
@click.option("--model", "models", multiple=True, metavar="ALIAS", help="Only this model's vector index (repeatable).")
@click.option("--text", "text_only", is_flag=True, help="Only the full-text (keyword) index.")
@click.option("--rebuild", is_flag=True, help="Build from scratch instead of updating.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def index(state: _State, *, models: tuple[str, ...], text_only: bool, rebuild: bool, as_json: bool) -> None:
    """Build or update the search indexes: each model's vector index (and its fast query encoder) from the
    stored vectors, and the full-text index from the metadata. Without options: all of them."""
    from papersys import service

    if models and text_only:
        raise click.UsageError("--model and --text choose different indexes; give one of them")
    with progress_runtime() as runtime:
        report = service.index(state.config(), models=models, text_only=text_only, rebuild=rebuild, runtime=runtime)
    _emit(report, as_json)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error becomes one line on stderr and a non-zero exit status."""
    _run(cli, argv)


def _run(command: click.Command, argv: list[str] | None) -> None:
    try:
        # non-standalone click returns ctx.exit()'s code instead of exiting
        code = command.main(args=argv, prog_name="papersys", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(INTERRUPTED_EXIT)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (PapersysError, KeyboardInterrupt) as exc:
        sys.exit(print_error(exc))
    sys.exit(code if isinstance(code, int) else 0)
