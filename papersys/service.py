"""Service functions: the one place the CLI and the scheduler call. They return frozen reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from papersys.config import Config
from papersys.runtime import Runtime
from papersys.store.layout import Layout

if TYPE_CHECKING:
    from papersys.ingest.harvest import IngestReport
    from papersys.ingest.snapshot import SnapshotReport


def layout_of(config: Config) -> Layout:
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

    request = HarvestRequest.build(config.ingest, start=start, until=until, sets=sets, dry_run=dry_run)
    return run_harvest(config.ingest, layout_of(config), request, runtime or Runtime())


def ingest_snapshot(
    config: Config, path: Path, *, dry_run: bool = False, runtime: Runtime | None = None
) -> SnapshotReport:
    """Bulk-load a Kaggle arXiv metadata snapshot (JSON lines) into the metadata store."""
    from papersys.ingest.snapshot import load_snapshot

    return load_snapshot(config.ingest, layout_of(config), path, dry_run=dry_run, runtime=runtime or Runtime())
