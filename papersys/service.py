"""Service functions: the one place the CLI and the scheduler call. They return frozen reports."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from papersys.config import Config
from papersys.jobrun import run_job
from papersys.runtime import Runtime
from papersys.store import locks, preflight
from papersys.store.layout import Layout
from papersys.store.verify import check_data_dir

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from papersys.config import ModelConfig
    from papersys.embed.autopatch import AutopatchReport, EngineFactory
    from papersys.embed.coverage import BacklogReport
    from papersys.embed.distill import DistillOptions, DistillReport
    from papersys.ingest.audit import AuditReport
    from papersys.ingest.feed import FeedReport
    from papersys.ingest.harvest import IngestReport
    from papersys.ingest.snapshot.load import SnapshotReport
    from papersys.migrate.report import MigrationReport
    from papersys.search.detail import IndexHealth, PaperDetail
    from papersys.search.query import QueryOptions, Searcher
    from papersys.search.report import IndexJobReport, TextIndexReport
    from papersys.search.results import Paper, SearchResult
    from papersys.status import StatusReport

    R = TypeVar("R", IngestReport, SnapshotReport, AuditReport, FeedReport)


def layout_of(config: Config) -> Layout:
    """The store of ``config``; StoreError when its data dir is not a readable directory."""
    check_data_dir(config.data_dir, write=False)
    return Layout(config.data_dir)


def ingest(
    config: Config,
    *,
    start: date | None = None,
    until: date | None = None,
    sets: Sequence[str] | None = None,
    dry_run: bool = False,
    runtime: Runtime | None = None,
) -> IngestReport:
    """Harvest arXiv over OAI-PMH into the metadata store (incremental by watermark)."""
    from papersys.ingest.harvest import HarvestRequest, run_harvest

    runtime = runtime or Runtime()
    request = HarvestRequest.build(config.ingest, start=start, until=until, sets=sets, dry_run=dry_run)
    if dry_run:  # reads only: no lock, no history entry
        return run_harvest(config.ingest, layout_of(config), request, runtime)
    report = run_job(
        config,
        "ingest",
        lock_names=[locks.METADATA],
        runtime=runtime,
        work=lambda: _with_text_index(config, run_harvest(config.ingest, layout_of(config), request, runtime), runtime),
        needs=preflight.metadata_write,
    )
    refresh_coverage(config, runtime)
    report_freshness(config, runtime)
    return report


def ingest_snapshot(
    config: Config, path: Path, *, dry_run: bool = False, runtime: Runtime | None = None
) -> SnapshotReport:
    """Bulk-load a Kaggle arXiv metadata snapshot (JSON lines) into the metadata store."""
    from papersys.ingest.snapshot.load import load_snapshot

    runtime = runtime or Runtime()
    if dry_run:  # reads only: no lock, no history entry
        return load_snapshot(config.ingest, layout_of(config), path, dry_run=True, runtime=runtime)
    report = run_job(
        config,
        "ingest-snapshot",
        lock_names=[locks.METADATA],
        runtime=runtime,
        work=lambda: _with_text_index(
            config, load_snapshot(config.ingest, layout_of(config), path, dry_run=False, runtime=runtime), runtime
        ),
        details={"snapshot": str(path)},
        needs=preflight.snapshot_load(path),
    )
    refresh_coverage(config, runtime)
    return report


def ingest_feeds(config: Config, *, runtime: Runtime | None = None) -> FeedReport:
    """Fetch arXiv's announcement feeds (``[ingest] feeds``) and store the papers announced there that the
    store lacks (``source = "feed"``, replaced by their OAI record at the next harvest)."""
    from papersys.ingest.feed import feed_url, run_feeds

    runtime = runtime or Runtime()
    url = feed_url(config.ingest)  # UsageError before any lock when no feed is configured

    def work() -> FeedReport:
        report = run_feeds(config.ingest, layout_of(config), runtime)
        return _with_text_index(config, report, runtime) if report.stored else report

    report = run_job(
        config,
        "ingest-feeds",
        lock_names=[locks.METADATA],
        runtime=runtime,
        work=work,
        details={"url": url},
        needs=preflight.metadata_write,
    )
    if report.stored:
        refresh_coverage(config, runtime)
        report_freshness(config, runtime)
    return report


def audit(
    config: Config,
    *,
    start: date | None = None,
    until: date | None = None,
    sets: Sequence[str] | None = None,
    repair: bool = False,
    runtime: Runtime | None = None,
) -> AuditReport:
    """List arXiv's identifiers over a range and compare them with the store (missing, stale, deleted);
    ``repair`` fetches and upserts exactly those records. The result is kept in ``state/audit.json``."""
    from papersys.ingest.audit import AuditRequest, run_audit
    from papersys.store.atomic import write_json

    runtime = runtime or Runtime()
    request = AuditRequest.build(
        config.ingest, today=runtime.clock().date(), start=start, until=until, sets=sets, repair=repair
    )

    def work() -> AuditReport:
        layout = layout_of(config)
        report = run_audit(config.ingest, layout, request, runtime)
        if report.fixed:
            report = _with_text_index(config, report, runtime)
        write_json(report.to_dict(), layout.audit_state)
        for klass, ids in report.remaining.items():
            runtime.observer.audit_gaps(klass, len(ids))
        return report

    # a repair writes the store (the metadata lock); a plain audit only reads it and writes audit.json
    names = [locks.METADATA] if repair else []
    report = run_job(config, "audit", lock_names=names, runtime=runtime, work=work, details={"repair": repair})
    if report.fixed:
        refresh_coverage(config, runtime)
        report_freshness(config, runtime)
    return report


def report_freshness(config: Config, runtime: Runtime) -> None:
    """Tell the observer the newest stored datestamp (papersys_freshness_seconds). Best effort."""
    from papersys.errors import PapersysError
    from papersys.store.metadata import newest_datestamp

    try:
        runtime.observer.freshness(newest_datestamp(layout_of(config)))
    except PapersysError as exc:
        log.warning("freshness not measured: %s", exc)


def _with_text_index(config: Config, report: R, runtime: Runtime) -> R:
    """``report`` with what updating the full-text index did (the job holds the metadata lock). Best effort: a
    failure is reported and logged, never undoes the write before it; `papersys index --text` repairs."""
    if not config.search.text_index:
        return report
    from papersys.search.report import IndexJobReport

    return replace(report, index=IndexJobReport(text=_update_text_index(config, rebuild=False, runtime=runtime)))


def _update_text_index(config: Config, *, rebuild: bool, runtime: Runtime) -> TextIndexReport:
    from papersys.errors import StoreError
    from papersys.search.report import TextIndexReport
    from papersys.search.text_build import update_text_index

    try:
        return update_text_index(Layout(config.data_dir), rebuild=rebuild, runtime=runtime)
    except (StoreError, OSError, ValueError) as exc:  # tantivy raises ValueError for what it cannot do
        log.warning("the full-text index was not updated: %s", exc)
        return TextIndexReport(f"failed: {exc}")


def refresh_coverage(config: Config, runtime: Runtime) -> None:
    """Recount the coverage of the years a write changed, for every enabled model, so that ``status``
    (which writes nothing) stays fast. Best effort: a model that cannot be counted is logged, not fatal."""
    from papersys.embed.coverage import coverage_by_year
    from papersys.errors import PapersysError

    layout = layout_of(config)
    for model in config.embedding.models:
        if not model.enabled:
            continue
        runtime.check_cancel()
        try:
            coverage = coverage_by_year(layout, model)
        except PapersysError as exc:
            log.warning("coverage of model %s not refreshed: %s", model.alias, exc)
            continue
        runtime.observer.backlog(model.alias, sum(c.gaps for c in coverage.values()))


def selected_models(config: Config, aliases: Sequence[str] = ()) -> list[ModelConfig]:
    """The models named (UsageError for an unknown alias; named disabled models included), else the enabled."""
    if aliases:
        return [config.model(alias) for alias in dict.fromkeys(aliases)]
    return [m for m in config.embedding.models if m.enabled]


def embed_autopatch(
    config: Config,
    *,
    models: Sequence[str] = (),
    limit: int | None = None,
    dry_run: bool = False,
    reembed: bool = False,
    runtime: Runtime | None = None,
    engine_factory: EngineFactory | None = None,
) -> AutopatchReport:
    """Embed every paper lacking a valid, current vector (newest years first); ``limit`` is per model."""
    from papersys.embed.autopatch import default_engine_factory, run_autopatch

    runtime = runtime or Runtime()
    chosen = selected_models(config, models)

    def work() -> AutopatchReport:
        report = run_autopatch(
            layout_of(config),
            chosen,
            runtime,
            limit=limit,
            dry_run=dry_run,
            reembed=reembed,
            engine_factory=engine_factory or default_engine_factory,
            embedding=config.embedding,
        )
        if dry_run:
            return report
        return replace(report, index=_refresh_indexes(config, chosen, runtime=runtime))

    if dry_run:  # reads only: no lock, no history entry
        return work()
    names = [locks.embeddings_lock(m.alias) for m in chosen]
    needs = preflight.compaction([m.alias for m in chosen])
    return run_job(config, "embed-autopatch", lock_names=names, runtime=runtime, work=work, needs=needs)


def embed_backlog(config: Config, *, models: Sequence[str] = ()) -> BacklogReport:
    """Gaps per model and year by class (missing / stale / invalid) and orphans; changes no store file."""
    from papersys.embed.coverage import backlog

    return backlog(layout_of(config), selected_models(config, models))


def distill_model(
    config: Config, *, source: str, target: str, options: DistillOptions, runtime: Runtime | None = None
) -> DistillReport:
    """Distil the configured model ``source`` into a static model ``<data_dir>/models/<target>/``."""
    from papersys.embed.distill import distill_model as distill

    model = config.model(source)
    check_data_dir(config.data_dir, write=True)
    return distill(Layout(config.data_dir), model, target, options, runtime or Runtime())


def status(config: Config) -> StatusReport:
    """What is stored, missing, ran and next; reads files only (no lock, writes nothing)."""
    from papersys.status import collect_status

    layout_of(config)  # a data dir that is a file or unreadable is an error, not an empty store
    return collect_status(config)


def migrate_legacy(
    config: Config,
    legacy_dir: Path,
    *,
    models: Sequence[str] = (),
    dry_run: bool = False,
    runtime: Runtime | None = None,
) -> MigrationReport:
    """Migrate legacy yearly datasets (``LEGACY_COL=ALIAS[:HF_NAME]`` specs in ``models``) into the store."""
    from papersys.migrate.legacy import model_mapping
    from papersys.migrate.run import run_migration

    runtime = runtime or Runtime()
    if dry_run:  # reads only: no lock, no history entry
        layout_of(config)  # the data dir check a job gets from run_job
        return run_migration(config, legacy_dir, models, runtime, dry_run=True)
    names = [locks.METADATA, *(locks.embeddings_lock(m.alias) for m in model_mapping(models))]
    report = run_job(
        config,
        "migrate",
        lock_names=names,
        runtime=runtime,
        work=lambda: _migrate_and_index(config, legacy_dir, models, runtime),
        details={"legacy_dir": str(legacy_dir)},
        needs=preflight.metadata_write,
    )
    refresh_coverage(config, runtime)
    return report


def _migrate_and_index(config: Config, legacy_dir: Path, models: Sequence[str], runtime: Runtime) -> MigrationReport:
    from papersys.migrate.run import run_migration

    report = run_migration(config, legacy_dir, models, runtime, dry_run=False)
    migrated = {m.alias for m in report.models}
    configured = [m for m in config.embedding.models if m.alias in migrated]
    if not configured:  # vectors of models this config does not search: no index to keep
        return report
    indexes = _refresh_indexes(config, configured, runtime=runtime)
    if config.search.text_index:
        indexes = replace(indexes, text=_update_text_index(config, rebuild=False, runtime=runtime))
    return replace(report, index=indexes)


def _refresh_indexes(config: Config, models: Sequence[ModelConfig], *, runtime: Runtime) -> IndexJobReport:
    from papersys.search.upkeep import refresh_indexes

    return refresh_indexes(config, models, runtime=runtime)


def index(
    config: Config,
    *,
    models: Sequence[str] = (),
    text_only: bool = False,
    rebuild: bool = False,
    runtime: Runtime | None = None,
) -> IndexJobReport:
    """Build or bring up to date the search indexes: each chosen model's vector index (and query encoder)
    from its stored vectors, and the full-text index from the metadata. ``models`` picks vector indexes
    only, ``text_only`` the full-text index only; neither: all (the full-text one if ``[search] text_index``)."""
    from papersys.search.report import IndexJobReport
    from papersys.search.text_build import update_text_index
    from papersys.search.upkeep import refresh_indexes

    runtime = runtime or Runtime()
    chosen = [] if text_only else selected_models(config, models)
    text = text_only or (not models and config.search.text_index)
    names = [locks.embeddings_lock(m.alias) for m in chosen] + ([locks.METADATA] if text else [])

    def work() -> IndexJobReport:
        report = refresh_indexes(config, chosen, rebuild=rebuild, runtime=runtime) if chosen else IndexJobReport()
        if text:
            report = replace(report, text=update_text_index(layout_of(config), rebuild=rebuild, runtime=runtime))
        return report

    needs = preflight.index_rebuild([m.alias for m in chosen], text=text) if rebuild else None
    return run_job(
        config, "index", lock_names=names, runtime=runtime, work=work, details={"rebuild": rebuild}, needs=needs
    )


def search(
    config: Config, text: str, options: QueryOptions | None = None, *, searcher: Searcher | None = None
) -> SearchResult:
    """The k stored papers that best answer ``text`` among those the filters admit: by meaning (exact
    cosine), by keywords (BM25), or both fused (hybrid); see devdoc/search.md for the query syntax."""
    from papersys.search.query import Query, QueryOptions, Searcher

    query = Query.of(config, options or QueryOptions())
    return (searcher or Searcher(config)).search(text, query)


def similar(
    config: Config, paper_id: str, options: QueryOptions | None = None, *, searcher: Searcher | None = None
) -> SearchResult:
    """The k papers nearest to a stored paper by its own vector (itself excluded)."""
    from papersys.search.query import Query, QueryOptions, Searcher

    query = Query.of(config, options or QueryOptions())
    return (searcher or Searcher(config)).similar(paper_id, query)


def paper(config: Config, paper_id: str, *, searcher: Searcher | None = None) -> Paper:
    """One stored paper's metadata (versioned and old-style ids accepted)."""
    from papersys.search.query import Searcher

    return (searcher or Searcher(config)).paper(paper_id)


def paper_detail(config: Config, paper_id: str, *, searcher: Searcher | None = None) -> PaperDetail:
    """One stored paper's metadata and the models whose vector index holds a vector for it."""
    from papersys.search.detail import paper_detail as detail
    from papersys.search.query import Searcher

    return detail(searcher or Searcher(config), config, paper_id)


def health(config: Config) -> IndexHealth:
    """The search indexes' state, from their manifests (the HTTP API's /healthz)."""
    from papersys.search.detail import index_health

    return index_health(config)
