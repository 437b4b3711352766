"""Cheap estimates of what a write job will need on disk, for the free-space pre-flight of ``run_job``.

Each estimate is a lower bound of the job's peak need, from file sizes only (one ``stat`` per file): a job
refused by it clearly could not have finished, and a roomy disk is never refused. The biggest single
rewrite dominates, because an atomic rewrite holds the old file and its new copy at once:

- a metadata write (harvest, feeds, audit repair) may rewrite any year file: a copy of the largest one;
- a snapshot load also adds the snapshot's papers: an eighth of the snapshot file (Parquet with zstd holds
  arXiv's JSON in about a quarter of its size; an eighth leaves room for error);
- autopatch writes parts and compacts a year into one file: the largest year file plus its parts, per model;
- an index rebuild writes a new generation beside the old: the size of the current index directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from papersys.store.layout import Layout

Estimate = Callable[[Layout], tuple[int, str]]  # (bytes, what they are for, in words)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tree_size(root: Path) -> int:
    if not root.is_dir():
        return 0
    return sum(_size(p) for p in root.rglob("*") if p.is_file())


def largest_year_file(layout: Layout) -> int:
    return max((_size(layout.metadata_file(y)) for y in layout.metadata_years()), default=0)


def metadata_write(layout: Layout) -> tuple[int, str]:
    return largest_year_file(layout), "a copy of the largest metadata year file"


def snapshot_load(snapshot: Path) -> Estimate:
    def estimate(layout: Layout) -> tuple[int, str]:
        return largest_year_file(layout) + _size(snapshot) // 8, f"the papers of {snapshot.name}"

    return estimate


def compaction(aliases: Sequence[str]) -> Estimate:
    def estimate(layout: Layout) -> tuple[int, str]:
        need = max((_largest_compaction(layout, alias) for alias in aliases), default=0)
        return need, "the compaction of the largest embedding year file"

    return estimate


def _largest_compaction(layout: Layout, alias: str) -> int:
    by_year: dict[int, int] = {y: _size(layout.embedding_file(alias, y)) for y in layout.embedding_years(alias)}
    for part in layout.embedding_parts(alias):
        by_year[part.year] = by_year.get(part.year, 0) + _size(part.path)
    return max(by_year.values(), default=0)


def index_rebuild(aliases: Iterable[str], *, text: bool) -> Estimate:
    def estimate(layout: Layout) -> tuple[int, str]:
        need = sum(_tree_size(layout.vector_index_dir(alias)) for alias in aliases)
        if text:
            need += _tree_size(layout.text_index_dir)
        return need, "a new copy of the search indexes"

    return estimate
