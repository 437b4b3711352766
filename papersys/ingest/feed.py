"""arXiv's announcement feeds (RSS 2.0, ``<feed_base_url>/<list>[+<list>...]``): the papers announced this
evening, hours before OAI-PMH carries them.

One conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the last answer) with the harvest's
timeouts, spacing, retries and ``Retry-After``; the answer is parsed strictly with lxml (a malformed feed is an
error and stores nothing). Items announced ``new`` or ``cross`` that the store does not hold become rows with
``source = "feed"``: partial metadata (no DOI, comments or journal ref; ``created`` is the announcement
day) that the next OAI record of the paper replaces (``store.metadata.upsert``); a feed row never replaces
a stored row. ``replace``/``replace-cross`` items are marked in ``state/feeds.json``: their new version
gets a new OAI datestamp, so the next harvest window fetches it.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import polars as pl
import requests
from lxml import etree

from papersys.config import IngestConfig
from papersys.errors import HarvestError, UsageError
from papersys.ingest.fields import clean_text, normalize_id, split_author_string
from papersys.ingest.oai import RETRY_STATUS, retry_after_seconds
from papersys.ingest.records import MetadataBatch
from papersys.ingest.sets import category_names
from papersys.report import Report
from papersys.runtime import Runtime
from papersys.store.atomic import read_json, write_json
from papersys.store.ids import InvalidIdError, year_expr
from papersys.store.layout import Layout
from papersys.store.metadata import FEED_SOURCE, upsert

__all__ = ["ANNOUNCE_TYPES", "FeedItem", "FeedReport", "feed_url", "parse_feed", "run_feeds"]

log = logging.getLogger(__name__)

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
STORED_TYPES = frozenset({"new", "cross"})  # first announcements: the paper may not be stored yet
_ARXIV = "{http://arxiv.org/schemas/atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_GUID = re.compile(r"^oai:arXiv\.org:(?P<id>.+?)v(?P<version>\d+)$")
# "arXiv:2401.00001v1 Announce Type: new \nAbstract: We study …"
_PREAMBLE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.DOTALL)
MARK_DAYS = 30  # replacement marks older than this are dropped (the harvest has long fetched them)


@dataclass(frozen=True)
class FeedItem:
    id: str
    version: int
    announce_type: str
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]
    announced: date
    license: str | None = None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=False, huge_tree=False)


def _item(element: etree._Element) -> FeedItem:
    """One ``<item>`` → FeedItem; ValueError when it lacks what a row needs."""
    guid = (element.findtext("guid") or "").strip()
    match = _GUID.match(guid)
    if match is None:
        raise ValueError(f"item guid {guid!r} is not oai:arXiv.org:<id>v<version>")
    arxiv_id = normalize_id(match["id"])
    kind = (element.findtext(f"{_ARXIV}announce_type") or "").strip()
    if kind not in ANNOUNCE_TYPES:
        raise ValueError(f"{arxiv_id}: unknown announce type {kind!r}")
    try:
        announced = parsedate_to_datetime((element.findtext("pubDate") or "").strip()).date()
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{arxiv_id}: no usable pubDate") from exc
    names: list[str] = []
    for creator in element.iterfind(f"{_DC}creator"):
        names += split_author_string(creator.text or "")
    categories = [c for c in (clean_text(e.text or "") for e in element.iterfind("category")) if c]
    title = clean_text(element.findtext("title") or "")
    abstract = clean_text(_PREAMBLE.sub("", element.findtext("description") or "", count=1))
    if not (title and abstract and categories):
        raise ValueError(f"{arxiv_id}: item lacks title, abstract or categories")
    rights = clean_text(element.findtext(f"{_DC}rights") or "") or None
    return FeedItem(arxiv_id, int(match["version"]), kind, title, abstract, names, categories, announced, rights)


def parse_feed(content: bytes) -> tuple[list[FeedItem], int]:
    """Every usable item of an arXiv RSS document, and how many were unusable; ValueError for a document
    that is not well-formed RSS 2.0 (nothing of it is used then)."""
    try:
        root = etree.fromstring(content, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"malformed XML ({exc})") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ValueError("document declares a DTD (refused: RSS needs none)")
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ValueError(f"not an RSS 2.0 feed (root element {root.tag!r})")
    items, skipped = [], 0
    for element in channel.iterfind("item"):
        try:
            items.append(_item(element))
        except (ValueError, InvalidIdError) as exc:
            skipped += 1
            log.warning("feed: skipping an unusable item: %s", exc)
    return items, skipped


def feed_url(cfg: IngestConfig) -> str:
    """The one URL of the configured feeds (arXiv joins several lists with ``+``)."""
    if not cfg.feeds:
        raise UsageError('no feeds configured: set [ingest] feeds = [...] (e.g. ["cs", "stat.ML"])')
    return f"{cfg.feed_base_url.rstrip('/')}/{'+'.join(cfg.feeds)}"


@dataclass(frozen=True)
class _Answer:
    not_modified: bool
    items: list[FeedItem] = field(default_factory=list)
    skipped: int = 0
    etag: str | None = None
    last_modified: str | None = None


class FeedClient:
    """GETs one feed with the harvest's politeness: timeouts, spacing, retries with backoff, Retry-After."""

    def __init__(self, cfg: IngestConfig, runtime: Runtime, session: requests.Session | None = None) -> None:
        self.cfg, self.runtime = cfg, runtime
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = cfg.user_agent
        self.requests = 0
        self.retries = 0
        self._last: float | None = None

    def _space(self) -> None:
        if self._last is not None:
            wait = self._last + self.cfg.request_interval_s - self.runtime.monotonic()
            if wait > 0:
                self.runtime.sleep(wait)
        self._last = self.runtime.monotonic()

    def fetch(self, url: str, *, etag: str | None, last_modified: str | None) -> _Answer:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempt = 0
        while True:
            self.runtime.check_cancel()
            self._space()
            self.requests += 1
            outcome, why, hinted = self._once(url, headers)
            if isinstance(outcome, _Answer):
                self.runtime.observer.harvest_request("ok")
                return outcome
            self.runtime.observer.harvest_request(outcome)
            if attempt >= self.cfg.max_retries:
                raise HarvestError(f"feed {url}", f"{why}; gave up after {attempt + 1} attempts")
            backoff = min(self.cfg.backoff_base_s * (2**attempt), self.cfg.max_retry_after_s)
            delay = min(hinted, self.cfg.max_retry_after_s) if hinted is not None else backoff
            self.retries += 1
            self.runtime.observer.harvest_retry(outcome)
            log.warning("feed %s: %s; retry %d/%d in %.1fs", url, why, attempt + 1, self.cfg.max_retries, delay)
            self.runtime.sleep(delay)
            attempt += 1

    def _once(self, url: str, headers: dict[str, str]) -> tuple[_Answer | str, str, float | None]:
        """One request: the answer, or (outcome label, why, Retry-After seconds) of a failure worth retrying."""
        try:
            resp = self.session.get(url, headers=headers, timeout=self.cfg.timeout_s)
            content = resp.content
        except requests.Timeout:
            return "timeout", f"no answer within {self.cfg.timeout_s:g}s", None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            return "connection_error", f"connection failed ({type(exc).__name__})", None
        except requests.RequestException as exc:
            raise HarvestError(f"feed {url}", f"request failed: {exc}") from exc
        if resp.status_code == 304:
            return _Answer(True, etag=resp.headers.get("ETag") or headers.get("If-None-Match")), "", None
        if resp.status_code == 200:
            try:
                items, skipped = parse_feed(content)
            except ValueError as exc:
                return "malformed", str(exc), None
            return _Answer(False, items, skipped, resp.headers.get("ETag"), resp.headers.get("Last-Modified")), "", None
        if resp.status_code in RETRY_STATUS or resp.status_code >= 500:
            hinted = retry_after_seconds(resp.headers.get("Retry-After"), self.runtime.clock())
            return f"http_{resp.status_code}", f"HTTP {resp.status_code}", hinted
        self.runtime.observer.harvest_request(f"http_{resp.status_code}")
        raise HarvestError(f"feed {url}", f"HTTP {resp.status_code} (not retried)")


@dataclass(frozen=True)
class FeedReport:
    url: str
    not_modified: bool
    items: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    stored: tuple[str, ...] = ()  # ids stored as new feed rows
    already: int = 0  # new/cross items of papers the store already holds (left as they are)
    filtered: int = 0  # outside ingest.categories
    skipped: int = 0  # unusable items
    replaced: tuple[str, ...] = ()  # replace/replace-cross ids marked for the next OAI window
    newest_item: date | None = None
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    index: Report | None = None

    def counts(self) -> dict[str, int]:
        return {
            "items": self.items,
            "stored": len(self.stored),
            "already": self.already,
            "replaced": len(self.replaced),
            "skipped": self.skipped,
            "requests": self.requests,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "not_modified": self.not_modified,
            "items": self.items,
            "by_type": self.by_type,
            "stored": list(self.stored),
            "already": self.already,
            "filtered": self.filtered,
            "skipped": self.skipped,
            "replaced": list(self.replaced),
            "newest_item": self.newest_item.isoformat() if self.newest_item else None,
            "requests": self.requests,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "index": self.index.to_dict() if self.index else None,
        }

    def summary(self) -> list[str]:
        if self.not_modified:
            lines = [f"feed {self.url}: not modified since the last fetch (HTTP 304)"]
        else:
            kinds = ", ".join(f"{self.by_type.get(k, 0)} {k}" for k in ANNOUNCE_TYPES)
            lines = [
                f"feed {self.url}: {self.items} items ({kinds}), newest {self.newest_item or 'none'}",
                f"{len(self.stored)} new papers stored (source feed), {self.already} already stored, "
                f"{len(self.replaced)} replacements marked for the next harvest"
                + (f", {self.filtered} filtered out" if self.filtered else "")
                + (f", {self.skipped} unusable" if self.skipped else ""),
            ]
        lines.append(f"{self.requests} requests ({self.retries} retries) in {self.seconds:.1f}s")
        return lines + (self.index.summary() if self.index else [])


def _stored_ids(layout: Layout, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    years = set(pl.select(year_expr(pl.lit(pl.Series(ids)))).to_series().drop_nulls().to_list())
    files = [layout.metadata_file(y) for y in sorted(years) if layout.metadata_file(y).exists()]
    if not files:
        return set()
    found = pl.scan_parquet(files).select("id").filter(pl.col("id").is_in(ids)).collect()
    return set(found["id"].to_list())


def _rows(items: list[FeedItem]) -> pl.DataFrame:
    batch = MetadataBatch()
    for item in items:
        batch.add(
            id=item.id,
            title=item.title,
            abstract=item.abstract,
            authors=item.authors,
            categories=item.categories,
            created=item.announced,  # v1's submission day is not in the feed: the announcement bounds it
            updated=None,
            doi=None,
            journal_ref=None,
            comments=None,
            license=item.license,
            datestamp=item.announced,
            source=FEED_SOURCE,
        )
    return batch.records()


def _save_state(layout: Layout, url: str, answer: _Answer, report_newest: date | None, now: datetime) -> None:
    state = read_json(layout.feed_state)
    state = state if isinstance(state, dict) else {}
    feeds = state.setdefault("feeds", {})
    previous = feeds.get(url, {})
    feeds[url] = {
        "etag": answer.etag or previous.get("etag"),
        "last_modified": answer.last_modified or previous.get("last_modified"),
        "fetched_at": now.isoformat(),
        "newest_item": report_newest.isoformat() if report_newest else previous.get("newest_item"),
    }
    marks = state.setdefault("replaced", {})
    for item in answer.items:
        if item.announce_type in ("replace", "replace-cross"):
            marks[item.id] = {"version": item.version, "announced": item.announced.isoformat()}
    cutoff = (now.date() - timedelta(days=MARK_DAYS)).isoformat()
    state["replaced"] = {k: v for k, v in sorted(marks.items()) if str(v.get("announced", "")) >= cutoff}
    write_json(state, layout.feed_state)


def run_feeds(cfg: IngestConfig, layout: Layout, runtime: Runtime) -> FeedReport:
    """Fetch the configured feeds once and store their new papers; the caller holds the metadata lock."""
    started = time.monotonic()
    url = feed_url(cfg)
    state = read_json(layout.feed_state)
    previous = (state.get("feeds", {}) if isinstance(state, dict) else {}).get(url, {})
    client = FeedClient(cfg, runtime)
    answer = client.fetch(url, etag=previous.get("etag"), last_modified=previous.get("last_modified"))
    if answer.not_modified:
        _save_state(layout, url, answer, None, runtime.clock())
        return FeedReport(
            url, True, requests=client.requests, retries=client.retries, seconds=time.monotonic() - started
        )
    wanted = category_names(cfg.categories)
    kept = [i for i in answer.items if not wanted or not wanted.isdisjoint(i.categories)]
    firsts: dict[str, FeedItem] = {}
    for item in kept:  # one row per id (an id listed twice keeps its highest version)
        if item.announce_type in STORED_TYPES and item.version >= firsts.get(item.id, item).version:
            firsts[item.id] = item
    held = _stored_ids(layout, list(firsts))
    fresh = [item for arxiv_id, item in sorted(firsts.items()) if arxiv_id not in held]
    if fresh:
        upsert(layout, _rows(fresh))
    newest = max((i.announced for i in answer.items), default=None)
    _save_state(layout, url, answer, newest, runtime.clock())
    return FeedReport(
        url,
        False,
        items=len(answer.items),
        by_type=dict(Counter(i.announce_type for i in answer.items)),
        stored=tuple(i.id for i in fresh),
        already=len(held),
        filtered=len(answer.items) - len(kept),
        skipped=answer.skipped,
        replaced=tuple(sorted({i.id for i in kept if i.announce_type not in STORED_TYPES})),
        newest_item=newest,
        requests=client.requests,
        retries=client.retries,
        seconds=time.monotonic() - started,
    )
