"""The record-by-record tree walker: rows from a ListRecords page (``arXiv``/``arXivRaw``), one lxml record at a
time. It is the fallback for pages the fast path cannot split, and the reference the tests hold the fast path to.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from lxml import etree

from papersys.ingest.fields import (
    AUTHOR_PARTS,
    clean_text,
    format_author,
    has_required,
    normalize_id,
    optional_text,
    parse_iso_date,
    split_author_string,
    split_categories,
    version_dates,
)
from papersys.ingest.page_xslt import TEXT_ELEMENTS
from papersys.ingest.records import MetadataBatch
from papersys.store.ids import InvalidIdError

log = logging.getLogger(__name__)

OAI = "{http://www.openarchives.org/OAI/2.0/}"
ARXIV = "{http://arxiv.org/OAI/arXiv/}"
RAW = "{http://arxiv.org/OAI/arXivRaw/}"
_RECORD = f"{OAI}record"
_HEADER = f"{OAI}header"
_METADATA = f"{OAI}metadata"
_OPTIONAL = ("doi", "journal_ref", "comments", "license")


@dataclass
class PageStats:
    records: int = 0  # records kept (added to the batch)
    deleted: int = 0  # deletion headers
    filtered: int = 0  # dropped by the category filter
    invalid: int = 0  # unusable records (bad id, missing title/abstract/dates)

    def add(self, other: PageStats) -> None:
        self.records += other.records
        self.deleted += other.deleted
        self.filtered += other.filtered
        self.invalid += other.invalid

    @property
    def seen(self) -> int:
        return self.records + self.deleted + self.filtered + self.invalid


@dataclass(frozen=True)
class Deletion:
    id: str
    datestamp: date


def parse_records(
    root: etree._Element,
    batch: MetadataBatch,
    *,
    categories: Collection[str] = (),
    source: str = "oai",
) -> PageStats:
    """Append every record of a ListRecords page to ``batch``; returns what happened to them."""
    stats = PageStats()
    wanted = frozenset(categories)
    for record in root.iterfind(f"{OAI}*/{_RECORD}"):  # ListRecords or GetRecord
        try:
            row = record_row(record, source=source)
        except (InvalidIdError, ValueError) as exc:
            stats.invalid += 1
            log.warning("skipping unusable record: %s", exc)
            continue
        if isinstance(row, Deletion):
            batch.add_deletion(row.id, row.datestamp)
            stats.deleted += 1
        elif wanted and wanted.isdisjoint(row["categories"]):
            stats.filtered += 1
        else:
            batch.add(**row)
            stats.records += 1
    return stats


def record_row(record: etree._Element, *, source: str) -> dict[str, Any] | Deletion:
    """One ``<record>`` → the keyword arguments of ``MetadataBatch.add``, or a Deletion; ValueError if unusable."""
    header = record.find(_HEADER)
    if header is None:
        raise ValueError("record has no header")
    arxiv_id, datestamp = _header_fields(header)
    if (header.get("status") or "").strip() == "deleted":
        return Deletion(arxiv_id, datestamp)
    metadata = record.find(_METADATA)
    payload = metadata[0] if metadata is not None and len(metadata) else None
    if payload is None:
        raise ValueError(f"{arxiv_id}: record has no metadata")
    if payload.tag == f"{ARXIV}arXiv":
        authors, created, updated = _arxiv_fields(payload)
        ns = ARXIV
    elif payload.tag == f"{RAW}arXivRaw":
        authors, created, updated = _raw_fields(payload)
        ns = RAW
    else:
        raise ValueError(f"{arxiv_id}: unsupported metadata format {payload.tag}")
    texts = {column: payload.findtext(f"{ns}{element}") for column, element in TEXT_ELEMENTS.items()}
    title, abstract = clean_text(texts["title"] or ""), clean_text(texts["abstract"] or "")
    categories = split_categories(texts["categories"])
    if not has_required(title, abstract, categories, created):
        raise ValueError(f"{arxiv_id}: record lacks title, abstract, categories or a creation date")
    return {
        "id": arxiv_id,
        "title": title,
        "abstract": abstract,
        "authors": authors,
        "categories": categories,
        "created": created,
        "updated": updated,
        **{column: optional_text(texts[column]) for column in _OPTIONAL},
        "datestamp": datestamp,
        "source": source,
    }


def _header_fields(header: etree._Element) -> tuple[str, date]:
    identifier = header.findtext(f"{OAI}identifier")
    datestamp = parse_iso_date(header.findtext(f"{OAI}datestamp"))
    if identifier is None or datestamp is None:
        raise ValueError("record header lacks identifier or datestamp")
    return normalize_id(identifier), datestamp


_Dates = tuple[list[str], date | None, date | None]


def _arxiv_fields(payload: etree._Element) -> _Dates:
    """Structured authors and the ``created``/``updated`` elements of the ``arXiv`` format."""
    names = []
    for author in payload.iterfind(f"{ARXIV}authors/{ARXIV}author"):
        parts = {part: author.findtext(f"{ARXIV}{part}") for part in AUTHOR_PARTS}
        name = format_author(parts["keyname"], parts["forenames"], parts["suffix"])
        if name:
            names.append(name)
    created = parse_iso_date(payload.findtext(f"{ARXIV}created"))
    return names, created, parse_iso_date(payload.findtext(f"{ARXIV}updated"))


def _raw_fields(payload: etree._Element) -> _Dates:
    """The author string and the version history of the ``arXivRaw`` format (an empty date counts as none)."""
    versions = [(v.get("version"), v.findtext(f"{RAW}date") or None) for v in payload.iterfind(f"{RAW}version")]
    created, updated = version_dates(versions)
    return split_author_string(payload.findtext(f"{RAW}authors") or ""), created, updated
