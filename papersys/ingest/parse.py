"""Pure parsing of OAI-PMH ListRecords pages in arXiv's ``arXiv`` and ``arXivRaw`` formats into rows."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from lxml import etree

from papersys.ingest.records import (
    MetadataBatch,
    format_author,
    optional_text,
    parse_iso_date,
    parse_rfc2822_date,
    split_author_string,
    split_categories,
)
from papersys.store.ids import InvalidIdError, normalize_id
from papersys.store.metadata import clean_text

log = logging.getLogger(__name__)

OAI = "{http://www.openarchives.org/OAI/2.0/}"
ARXIV = "{http://arxiv.org/OAI/arXiv/}"
RAW = "{http://arxiv.org/OAI/arXivRaw/}"
_RECORD = f"{OAI}record"
_HEADER = f"{OAI}header"
_METADATA = f"{OAI}metadata"
# element → metadata column, for the simple text fields both formats share
_SIMPLE = {
    "title": "title",
    "abstract": "abstract",
    "categories": "categories",
    "comments": "comments",
    "journal-ref": "journal_ref",
    "doi": "doi",
    "license": "license",
    "id": "id",
}


@dataclass
class PageStats:
    records: int = 0  # records kept (added to the batch)
    deleted: int = 0  # deletion headers
    filtered: int = 0  # dropped by the category filter
    invalid: int = 0  # unusable records (bad id, missing title/abstract/dates)


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
        header = record.find(_HEADER)
        if header is None:
            stats.invalid += 1
            continue
        try:
            _parse_record(record, header, batch, wanted, source, stats)
        except (InvalidIdError, ValueError) as exc:
            stats.invalid += 1
            log.warning("skipping unusable record: %s", exc)
    return stats


def _header_fields(header: etree._Element) -> tuple[str, date]:
    identifier = header.findtext(f"{OAI}identifier")
    datestamp = parse_iso_date(header.findtext(f"{OAI}datestamp"))
    if identifier is None or datestamp is None:
        raise ValueError("record header lacks identifier or datestamp")
    return normalize_id(identifier), datestamp


def _parse_record(
    record: etree._Element,
    header: etree._Element,
    batch: MetadataBatch,
    wanted: frozenset[str],
    source: str,
    stats: PageStats,
) -> None:
    arxiv_id, datestamp = _header_fields(header)
    if header.get("status") == "deleted":
        batch.add_deletion(arxiv_id, datestamp)
        stats.deleted += 1
        return
    metadata = record.find(_METADATA)
    payload = metadata[0] if metadata is not None and len(metadata) else None
    if payload is None:
        raise ValueError(f"{arxiv_id}: record has no metadata")
    if payload.tag == f"{ARXIV}arXiv":
        fields = _arxiv_fields(payload, ARXIV)
    elif payload.tag == f"{RAW}arXivRaw":
        fields = _raw_fields(payload, RAW)
    else:
        raise ValueError(f"{arxiv_id}: unsupported metadata format {payload.tag}")
    cats = split_categories(fields.pop("categories", None))  # type: ignore[arg-type]
    if wanted and wanted.isdisjoint(cats):
        stats.filtered += 1
        return
    title, abstract = fields.get("title"), fields.get("abstract")
    if not title or not abstract or not cats or fields.get("created") is None:
        raise ValueError(f"{arxiv_id}: record lacks title, abstract, categories or a creation date")
    batch.add(
        id=arxiv_id,
        title=clean_text(title),  # type: ignore[arg-type]
        abstract=clean_text(abstract),  # type: ignore[arg-type]
        authors=fields.get("authors") or [],  # type: ignore[arg-type]
        categories=cats,
        created=fields["created"],  # type: ignore[arg-type]
        updated=fields.get("updated"),  # type: ignore[arg-type]
        doi=optional_text(fields.get("doi")),  # type: ignore[arg-type]
        journal_ref=optional_text(fields.get("journal_ref")),  # type: ignore[arg-type]
        comments=optional_text(fields.get("comments")),  # type: ignore[arg-type]
        license=optional_text(fields.get("license")),  # type: ignore[arg-type]
        datestamp=datestamp,
        source=source,
    )
    stats.records += 1


Fields = dict[str, object]


def _arxiv_fields(payload: etree._Element, ns: str) -> Fields:
    fields: Fields = {}
    cut = len(ns)
    for child in payload:
        tag = child.tag[cut:] if isinstance(child.tag, str) else ""
        column = _SIMPLE.get(tag)
        if column:
            fields[column] = child.text
        elif tag == "created":
            fields["created"] = parse_iso_date(child.text)
        elif tag == "updated":
            fields["updated"] = parse_iso_date(child.text)
        elif tag == "authors":
            fields["authors"] = [
                name
                for author in child
                if (
                    name := format_author(
                        author.findtext(f"{ns}keyname"),
                        author.findtext(f"{ns}forenames"),
                        author.findtext(f"{ns}suffix"),
                    )
                )
            ]
    return fields


def _raw_fields(payload: etree._Element, ns: str) -> Fields:
    fields: Fields = {}
    versions: list[tuple[int, date]] = []
    cut = len(ns)
    for child in payload:
        tag = child.tag[cut:] if isinstance(child.tag, str) else ""
        column = _SIMPLE.get(tag)
        if column:
            fields[column] = child.text
        elif tag == "authors":
            fields["authors"] = split_author_string(child.text or "")
        elif tag == "version":
            number = (child.get("version") or "v0").lstrip("v")
            stamp = child.findtext(f"{ns}date")
            if stamp:
                versions.append((int(number) if number.isdigit() else len(versions) + 1, parse_rfc2822_date(stamp)))
    if versions:
        versions.sort()
        fields["created"] = versions[0][1]
        fields["updated"] = versions[-1][1] if len(versions) > 1 else None
    return fields
