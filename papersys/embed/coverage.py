"""Per-year plans (metadata → texts → hashes → gaps) and coverage counts for autopatch and backlog, cached
per model under a signature of each year's inputs (hashing a 3 M paper store takes seconds)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from papersys.config import ModelConfig
from papersys.embed.gaps import Coverage, classify, coverage_of, orphan_ids
from papersys.embed.hashes import year_text_hashes
from papersys.embed.manifest import check_manifest
from papersys.embed.text import render_texts, template_fields
from papersys.errors import StoreError
from papersys.store.atomic import file_stat, read_json, write_json
from papersys.store.embeddings import EmbeddingStore, Manifest
from papersys.store.layout import Layout
from papersys.store.metadata import read_year, year_rows

_CACHE_VERSION = 1
KEEP_PLAN_ROWS = 65_536  # gap rows of the plans that coverage_by_year may hand on (their texts stay in memory)


@dataclass(frozen=True)
class YearPlan:
    year: int
    gaps: pl.DataFrame  # id, text_hash, text, status — the papers to embed
    ids: pl.Series  # every paper id of the year in the metadata
    orphans: int
    coverage: Coverage
    has_metadata: bool
    metadata_stat: list[int] | None  # taken before the metadata was read
    embeddings_stat: list[list[Any]] = field(default_factory=list)  # taken before the vectors were read


def model_store(layout: Layout, model: ModelConfig, manifest: Manifest) -> EmbeddingStore:
    """``model``'s embedding store, read under ``manifest`` (whose ``valid_since`` makes older rows stale)."""
    return EmbeddingStore(layout, model.alias, model.dim, model.dtype, manifest.valid_since)


def plan_year(store: EmbeddingStore, model: ModelConfig, year: int, *, persist: bool = True) -> YearPlan:
    """Read one year's metadata and stored vectors and classify every paper (``persist``: may update the
    text-hash cache)."""
    layout = store.layout
    metadata_stat = file_stat(layout.metadata_file(year))
    embeddings_stat = store.files_signature(year)
    columns = list(dict.fromkeys(["id", *template_fields(model.template)]))
    meta = read_year(layout, year, columns=columns)
    texts = render_texts(meta, model.template, model.prefix)
    hashes = year_text_hashes(layout, store.alias, year, meta["id"], texts, persist=persist)
    expected = pl.DataFrame({"id": meta["id"], "text_hash": hashes, "text": texts})
    stored = store.read(year, vectors=False)
    classified = classify(expected, stored, valid_since=store.valid_since)
    orphans = orphan_ids(expected, stored).len()
    return YearPlan(
        year=year,
        gaps=classified.filter(pl.col("status") != "valid"),
        ids=meta["id"],
        orphans=orphans,
        coverage=coverage_of(classified, orphans),
        has_metadata=metadata_stat is not None,
        metadata_stat=metadata_stat,
        embeddings_stat=embeddings_stat,
    )


def years_of(store: EmbeddingStore) -> list[int]:
    """Every year with metadata or stored vectors of the model, newest first."""
    return sorted(set(store.layout.metadata_years()) | set(store.years()), reverse=True)


def signature(
    store: EmbeddingStore,
    model: ModelConfig,
    year: int,
    metadata_stat: list[int] | None,
    *,
    embeddings_stat: list[list[Any]] | None = None,
) -> str:
    """Fingerprint of a year's inputs. Pass the stats taken *before* reading them: a writer changing a file
    while it was being read then leaves a signature that no longer matches, instead of a stale count."""
    inputs: dict[str, Any] = {
        "metadata": metadata_stat,
        "embeddings": store.files_signature(year) if embeddings_stat is None else embeddings_stat,
        "model": [model.template, model.prefix, model.dim, model.dtype],
        "valid_since": store.valid_since.isoformat() if store.valid_since else None,
    }
    return hashlib.blake2b(json.dumps(inputs, sort_keys=True).encode(), digest_size=16).hexdigest()


def _load_cache(store: EmbeddingStore) -> dict[str, Any]:
    try:
        raw = read_json(store.coverage_cache)
    except StoreError:  # a cache: a damaged one is rebuilt, never fatal
        return {}
    if not isinstance(raw, dict) or raw.get("version") != _CACHE_VERSION or not isinstance(raw.get("years"), dict):
        return {}
    years: dict[str, Any] = raw["years"]
    return years


def _cached(entry: Any, sig: str) -> Coverage | None:
    if not isinstance(entry, dict) or entry.get("signature") != sig:
        return None
    try:
        return Coverage(**entry["coverage"])
    except (KeyError, TypeError):
        return None


def record_coverage(
    store: EmbeddingStore, updates: dict[int, tuple[str, Coverage]], *, drop: set[str] | frozenset[str] = frozenset()
) -> None:
    """Store (signature, counts) for some years, drop others, keep the remaining cached years as they are."""
    years = {k: v for k, v in _load_cache(store).items() if k not in drop}
    for year, (sig, cov) in updates.items():
        years[str(year)] = {"signature": sig, "coverage": cov.to_dict()}
    write_json({"version": _CACHE_VERSION, "years": years}, store.coverage_cache)


def coverage_by_year(
    layout: Layout,
    model: ModelConfig,
    manifest: Manifest | None = None,
    *,
    persist: bool = True,
    plans: dict[int, YearPlan] | None = None,
    on_gaps: Callable[[], None] | None = None,
) -> dict[int, Coverage]:
    """Counts per year (newest first), from the cache where a year's inputs are unchanged.

    Recomputed years are written back to the cache unless ``persist`` is false (``status`` writes
    nothing). Raises ManifestMismatchError when ``model`` no longer matches its stored manifest. Given
    ``plans``, the plans made for recomputed years are put there while their gaps add up to at most
    KEEP_PLAN_ROWS, so that autopatch need not plan a year twice (planning hashes every text of the year).
    ``on_gaps`` is called once, at the first year found to have gaps (autopatch starts its engine then).
    """
    store = model_store(layout, model, manifest or check_manifest(layout, model))
    cache = _load_cache(store)
    result: dict[int, Coverage] = {}
    updates: dict[int, tuple[str, Coverage]] = {}
    for year in years_of(store):
        sig = signature(store, model, year, file_stat(layout.metadata_file(year)))
        cov = _cached(cache.get(str(year)), sig)
        if cov is None and not store.files_signature(year):
            cov = _unembedded(layout, year)  # no vector of the year yet: every paper missing, nothing to hash
            updates[year] = (sig, cov)
        elif cov is None:
            plan = plan_year(store, model, year, persist=persist)
            cov = plan.coverage
            fresh = signature(store, model, year, plan.metadata_stat, embeddings_stat=plan.embeddings_stat)
            updates[year] = (fresh, cov)  # under the stats taken before the plan read its files
            if plans is not None and sum(p.gaps.height for p in plans.values()) + cov.gaps <= KEEP_PLAN_ROWS:
                plans[year] = replace(plan, ids=plan.ids if plan.orphans else plan.ids.clear())
        result[year] = cov
        if on_gaps is not None and cov.gaps:
            on_gaps()
            on_gaps = None
    gone = set(cache) - {str(y) for y in result}  # years whose files were removed
    if persist and (updates or gone):
        record_coverage(store, updates, drop=gone)
    return result


def _unembedded(layout: Layout, year: int) -> Coverage:
    """Counts of a year that has no stored vector: its metadata rows, all missing (read from the Parquet
    footer). A backfill's years are then planned once, by the run, not also here: planning hashes every text.
    """
    papers = year_rows(layout, year)
    return Coverage(papers=papers, missing=papers)


@dataclass(frozen=True)
class ModelBacklog:
    alias: str
    years: tuple[tuple[int, Coverage], ...]  # newest first

    @property
    def total(self) -> Coverage:
        return sum((cov for _, cov in self.years), Coverage())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.alias,
            "total": {**self.total.to_dict(), "gaps": self.total.gaps},
            "years": {str(year): {**cov.to_dict(), "gaps": cov.gaps} for year, cov in self.years},
        }

    def summary(self) -> list[str]:
        t = self.total
        lines = [
            f"{self.alias}: {t.gaps:,} of {t.papers:,} papers need embedding "
            f"(missing {t.missing:,}, stale {t.stale:,}, invalid {t.invalid:,}); {t.orphans:,} orphans"
        ]
        for year, cov in self.years:
            if cov.gaps or cov.orphans:
                lines.append(
                    f"  {year}: {cov.gaps:>9,} of {cov.papers:>9,}  missing {cov.missing:,} · stale {cov.stale:,}"
                    f" · invalid {cov.invalid:,} · orphans {cov.orphans:,}"
                )
        return lines


@dataclass(frozen=True)
class BacklogReport:
    models: tuple[ModelBacklog, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"models": [m.to_dict() for m in self.models]}

    def summary(self) -> list[str]:
        if not self.models:
            return ["no enabled embedding model"]
        return [line for m in self.models for line in m.summary()]


def backlog(layout: Layout, models: list[ModelConfig]) -> BacklogReport:
    """Gaps per model and year by class; reads only (the coverage cache is refreshed as a by-product)."""
    return BacklogReport(tuple(ModelBacklog(m.alias, tuple(coverage_by_year(layout, m).items())) for m in models))
