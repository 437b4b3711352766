"""The completeness audit: what arXiv lists (ListIdentifiers) against what the store holds, and the repair.

A harvest can miss papers without any error (a server that leaves records out of a ListRecords page, a
window cut short upstream); the only evidence of completeness is the list of identifiers itself. The audit
lists every identifier of a datestamp range through the harvester's client (spacing, retries,
``Retry-After``, resumption tokens, strict XML) and sorts every difference into one of three classes:

- ``missing``: listed as live, not stored (and no stored tombstone at least as new);
- ``stale``: listed with a newer datestamp than the stored row, or stored only from a feed item;
- ``deleted``: listed as deleted, still stored (the stored row no newer than the deletion).

The repair fetches exactly those records (GetRecord for a few, ListRecords over the affected days for
many, then GetRecord for any that ListRecords still left out) and upserts them like a harvest does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from lxml import etree

from papersys.config import IngestConfig, is_set_spec
from papersys.errors import UsageError
from papersys.ingest.oai import OAI_NS, OAIClient
from papersys.ingest.parse import parse_page_records
from papersys.ingest.sets import category_names
from papersys.ingest.windows import EARLIEST_DATESTAMP
from papersys.report import Report
from papersys.runtime import Runtime
from papersys.store.ids import id_expr, year_expr
from papersys.store.layout import Layout
from papersys.store.metadata import DELETION_SCHEMA, FEED_SOURCE, empty_metadata, read_deletions, upsert
from papersys.store.state import set_key

__all__ = ["CLASSES", "AuditReport", "AuditRequest", "compare", "list_identifiers", "run_audit"]

log = logging.getLogger(__name__)

CLASSES = ("missing", "stale", "deleted")
GET_RECORD_MAX = 20  # more records to fetch than this: ListRecords over their days (a page holds ~1,300)
OAI_ID_PREFIX = "oai:arXiv.org:"
_HEADER = f"{OAI_NS}ListIdentifiers/{OAI_NS}header"
_IDENTIFIER, _DATESTAMP, _SET_SPEC = f"{OAI_NS}identifier", f"{OAI_NS}datestamp", f"{OAI_NS}setSpec"
LISTED_SCHEMA = {"id": pl.String(), "datestamp": pl.Date(), "deleted": pl.Boolean()}
GAP_SCHEMA = {"id": pl.String(), "datestamp": pl.Date(), "class": pl.String()}


@dataclass(frozen=True)
class AuditRequest:
    start: date
    until: date
    sets: tuple[str | None, ...]
    repair: bool = False

    @classmethod
    def build(
        cls,
        cfg: IngestConfig,
        *,
        today: date,
        start: date | None = None,
        until: date | None = None,
        sets: Sequence[str] | None = None,
        repair: bool = False,
    ) -> AuditRequest:
        """``--from``/``--until`` (default: the last ``audit_days`` up to today) and ``--set`` (default:
        ``ingest.sets``, else all of arXiv); UsageError for a reversed range or a bad set spec."""
        until = until or today
        start = start or until - timedelta(days=cfg.audit_days - 1)
        if start > until:
            raise UsageError(f"--from {start} is after --until {until}")
        start = max(start, EARLIEST_DATESTAMP)
        chosen: tuple[str | None, ...] = tuple(sets) if sets else (cfg.sets or (None,))
        for spec in chosen:
            if spec is not None and not is_set_spec(spec):
                raise UsageError(f"{spec!r} is not an arXiv set spec (e.g. cs, physics:hep-th, cs:cs:LG)")
        return cls(start, until, chosen, repair)


@dataclass(frozen=True)
class AuditReport:
    at: datetime
    start: date
    until: date
    sets: tuple[str, ...]
    listed: int  # distinct identifiers listed over the range
    gaps: dict[str, tuple[str, ...]]  # class → ids found
    days: dict[str, dict[str, int]]  # datestamp day (as listed) → class → ids found
    repaired: bool = False
    fetched_get_record: int = 0  # GetRecord requests of the repair
    fetched_days: int = 0  # days fetched with ListRecords by the repair
    fixed: int = 0  # store rows the repair added, replaced or removed
    remaining: dict[str, tuple[str, ...]] = field(default_factory=dict)  # class → ids still wrong afterwards
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    index: Report | None = None  # what updating the full-text index did after a repair (the service's)

    @property
    def found(self) -> int:
        return sum(len(ids) for ids in self.gaps.values())

    @property
    def left(self) -> int:
        return sum(len(ids) for ids in self.remaining.values())

    @property
    def clean(self) -> bool:
        """No gap remains (none found, or every one repaired): exit status 0."""
        return self.left == 0

    def counts(self) -> dict[str, int]:
        found = {c: len(self.gaps.get(c, ())) for c in CLASSES}
        return {"listed": self.listed, **found, "fixed": self.fixed, "remaining": self.left}

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "from": self.start.isoformat(),
            "until": self.until.isoformat(),
            "sets": list(self.sets),
            "listed": self.listed,
            "gaps": {c: list(self.gaps.get(c, ())) for c in CLASSES},
            "counts": {c: len(self.gaps.get(c, ())) for c in CLASSES},
            "days": self.days,
            "repaired": self.repaired,
            "fetched_get_record": self.fetched_get_record,
            "fetched_days": self.fetched_days,
            "fixed": self.fixed,
            "remaining": {c: list(self.remaining.get(c, ())) for c in CLASSES},
            "clean": self.clean,
            "requests": self.requests,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "index": self.index.to_dict() if self.index else None,
        }

    def summary(self, shown: int = 10) -> list[str]:
        lines = [
            f"audit {self.start} .. {self.until} ({', '.join(self.sets)}): {self.listed} identifiers listed, "
            + ", ".join(f"{len(self.gaps.get(c, ()))} {c}" for c in CLASSES)
        ]
        for day, by_class in sorted(self.days.items()):
            lines.append(f"  {day}: " + ", ".join(f"{n} {c}" for c, n in by_class.items()))
        for c in CLASSES:
            ids = self.gaps.get(c, ())
            if ids:
                more = f" … and {len(ids) - shown} more (--json lists all)" if len(ids) > shown else ""
                lines.append(f"  {c}: {' '.join(ids[:shown])}{more}")
        if self.repaired:
            lines.append(
                f"repair: {self.fixed} store row(s) fixed ({self.fetched_get_record} GetRecord, "
                f"{self.fetched_days} day(s) of ListRecords); {self.left} gap(s) remain"
            )
            for c in CLASSES:
                if self.remaining.get(c):
                    lines.append(f"  still {c}: {' '.join(self.remaining[c][:shown])}")
        lines.append("clean" if self.clean else f"{self.left} gap(s) remain (papersys audit --repair fixes them)")
        lines.append(f"{self.requests} requests ({self.retries} retries) in {self.seconds:.1f}s")
        return lines + (self.index.summary() if self.index else [])


def _spec_category(spec: str) -> str | None:
    """The category a current-style set spec names (``cs:cs:LG`` → cs.LG, ``physics:hep-th`` → hep-th)."""
    parts = spec.split(":")
    if len(parts) == 3:
        return f"{parts[1]}.{parts[2]}"
    if len(parts) == 2 and parts[0] == "physics":
        return parts[1]
    return None  # a group (``cs``): it does not say which category


def _kept(header: etree._Element, wanted: frozenset[str]) -> bool:
    """Whether a header may be in the store under ``ingest.categories``: some spec names a wanted category,
    or no spec names a category at all (legacy group specs: cannot tell, so audited)."""
    named = [c for c in (_spec_category(s.text or "") for s in header.iterfind(_SET_SPEC)) if c is not None]
    return not named or not wanted.isdisjoint(named)


def parse_identifiers(root: etree._Element, wanted: frozenset[str] = frozenset()) -> pl.DataFrame:
    """The headers of one ListIdentifiers page → (id, datestamp, deleted); unusable headers are dropped."""
    identifiers: list[str | None] = []
    stamps: list[str | None] = []
    deleted: list[bool] = []
    for header in root.iterfind(_HEADER):
        if wanted and not _kept(header, wanted):
            continue
        identifiers.append(header.findtext(_IDENTIFIER))
        stamps.append(header.findtext(_DATESTAMP))
        deleted.append(header.get("status") == "deleted")
    raw = pl.DataFrame(
        {"identifier": identifiers, "stamp": stamps, "deleted": deleted},
        schema={"identifier": pl.String(), "stamp": pl.String(), "deleted": pl.Boolean()},
    )
    frame = raw.select(
        id_expr("identifier").alias("id"),
        pl.col("stamp").str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias("datestamp"),
        "deleted",
    )
    usable = frame.filter(year_expr("id").is_not_null() & pl.col("datestamp").is_not_null())
    if usable.height < frame.height:
        log.warning("ListIdentifiers: %d unusable header(s) skipped", frame.height - usable.height)
    return usable


def list_identifiers(client: OAIClient, cfg: IngestConfig, request: AuditRequest, runtime: Runtime) -> pl.DataFrame:
    """Every identifier listed over the request's range and sets, newest datestamp per id."""
    wanted = category_names(cfg.categories)
    frames = [pl.DataFrame(schema=LISTED_SCHEMA)]
    for spec in request.sets:
        task = runtime.progress.task(f"audit {set_key(spec)} {request.start}..{request.until}", unit="ids")
        try:
            pages = client.pages(
                metadata_prefix=cfg.metadata_prefix,
                start=request.start,
                until=request.until,
                set_spec=spec,
                verb="ListIdentifiers",
            )
            for page in pages:
                frame = parse_identifiers(page.root, wanted)
                frames.append(frame)
                if page.complete_list_size:
                    task.update(total=page.complete_list_size)
                task.advance(frame.height)
                runtime.check_cancel()
        finally:
            task.close()
    listed = pl.concat(frames)
    return listed.sort(["id", "datestamp"]).unique(subset="id", keep="last")


def _stored(layout: Layout, ids: pl.Series) -> pl.DataFrame:
    """(id, stored datestamp) of the stored rows among ``ids`` (only the year files they can be in)."""
    years = set(pl.select(year_expr(pl.lit(ids)).unique()).to_series().drop_nulls().to_list())
    files = [layout.metadata_file(y) for y in sorted(years) if layout.metadata_file(y).exists()]
    if not files:
        return pl.DataFrame(schema={"id": pl.String(), "stored": pl.Date(), "stored_source": pl.String()})
    scan = pl.scan_parquet(files).select(
        "id", pl.col("datestamp").alias("stored"), pl.col("source").alias("stored_source")
    )
    return scan.join(pl.LazyFrame({"id": ids}), on="id", how="semi").collect()


def compare(layout: Layout, listed: pl.DataFrame) -> pl.DataFrame:
    """The gaps (id, listed datestamp, class) between ``listed`` (id, datestamp, deleted) and the store."""
    stored = _stored(layout, listed["id"])
    tombs = read_deletions(layout).rename({"datestamp": "tomb"})
    joined = listed.join(stored, on="id", how="left").join(tombs, on="id", how="left")
    klass = (
        pl.when(pl.col("deleted"))
        .then(
            pl.when(pl.col("stored").is_not_null() & (pl.col("datestamp") >= pl.col("stored"))).then(pl.lit("deleted"))
        )
        .when(pl.col("stored").is_null())
        .then(pl.when(pl.col("tomb").is_null() | (pl.col("datestamp") > pl.col("tomb"))).then(pl.lit("missing")))
        .when((pl.col("datestamp") > pl.col("stored")) | (pl.col("stored_source") == FEED_SOURCE))
        .then(pl.lit("stale"))  # a feed row stands in until its OAI record is stored
    )
    gaps = joined.with_columns(klass.alias("class")).filter(pl.col("class").is_not_null())
    return gaps.select("id", "datestamp", "class").sort("datestamp", "id")


def _by_class(gaps: pl.DataFrame) -> dict[str, tuple[str, ...]]:
    return {c: tuple(sorted(gaps.filter(pl.col("class") == c)["id"].to_list())) for c in CLASSES}


def _by_day(gaps: pl.DataFrame) -> dict[str, dict[str, int]]:
    days: dict[str, dict[str, int]] = {}
    counted = gaps.group_by("datestamp", "class").len().sort("datestamp", "class")
    for day, klass, n in counted.iter_rows():
        days.setdefault(day.isoformat(), {})[klass] = n
    return days


def _day_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted days → runs of consecutive days as inclusive (first, last) ranges."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


@dataclass
class _Fetched:
    records: list[pl.DataFrame] = field(default_factory=lambda: [empty_metadata()])
    deletions: list[pl.DataFrame] = field(default_factory=lambda: [pl.DataFrame(schema=dict(DELETION_SCHEMA))])
    get_record: int = 0
    days: int = 0

    def add(self, root: etree._Element, targets: pl.Series, wanted: frozenset[str]) -> None:
        parsed = parse_page_records(root, categories=wanted)
        self.records.append(parsed.records.filter(pl.col("id").is_in(targets.implode())))
        self.deletions.append(parsed.deletions.filter(pl.col("id").is_in(targets.implode())))

    def ids(self) -> set[str]:
        return {i for frame in (*self.records, *self.deletions) for i in frame["id"].to_list()}


def _fetch(client: OAIClient, cfg: IngestConfig, request: AuditRequest, gaps: pl.DataFrame) -> _Fetched:
    """The records of the missing and stale ids: ListRecords over their days when there are many, then
    GetRecord for each one still lacking (all of them when there are few)."""
    wanted = category_names(cfg.categories)
    targets = gaps.filter(pl.col("class") != "deleted")
    fetched = _Fetched()
    if targets.height > GET_RECORD_MAX:
        for lo, hi in _day_ranges(targets["datestamp"].to_list()):
            fetched.days += (hi - lo).days + 1
            for spec in request.sets:
                pages = client.pages(metadata_prefix=cfg.metadata_prefix, start=lo, until=hi, set_spec=spec)
                for page in pages:
                    fetched.add(page.root, targets["id"], wanted)
    have = fetched.ids()
    for arxiv_id in targets["id"].to_list():
        if arxiv_id in have:
            continue
        fetched.get_record += 1
        root = client.get_record(OAI_ID_PREFIX + arxiv_id, metadata_prefix=cfg.metadata_prefix)
        if root is None:
            log.warning("audit repair: %s is listed but GetRecord says it does not exist", arxiv_id)
            continue
        fetched.add(root, targets["id"], wanted)
    return fetched


def run_audit(cfg: IngestConfig, layout: Layout, request: AuditRequest, runtime: Runtime) -> AuditReport:
    """List, compare and (``request.repair``) repair; the caller holds the metadata lock for a repair."""
    started = time.monotonic()
    client = OAIClient(cfg, runtime)
    listed = list_identifiers(client, cfg, request, runtime)
    gaps = compare(layout, listed)
    found = _by_class(gaps)
    fetched, fixed, remaining = _Fetched(), 0, found
    if request.repair and gaps.height:
        fetched = _fetch(client, cfg, request, gaps)
        listed_deletions = gaps.filter(pl.col("class") == "deleted").select("id", "datestamp")
        result = upsert(layout, pl.concat(fetched.records), pl.concat([*fetched.deletions, listed_deletions]))
        fixed = result.total("new") + result.total("updated") + result.total("deleted")
        remaining = _by_class(compare(layout, listed))
    return AuditReport(
        at=runtime.clock(),
        start=request.start,
        until=request.until,
        sets=tuple(set_key(s) for s in request.sets),
        listed=listed.height,
        gaps=found,
        days=_by_day(gaps),
        repaired=request.repair,
        fetched_get_record=fetched.get_record,
        fetched_days=fetched.days,
        fixed=fixed,
        remaining=remaining,
        requests=client.requests,
        retries=client.retries,
        seconds=time.monotonic() - started,
    )
