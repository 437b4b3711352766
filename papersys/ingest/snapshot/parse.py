"""Pure mapping of the Kaggle ``arxiv-metadata-oai-snapshot.json`` lines to metadata rows (no I/O).

A line that cannot become a valid row (invalid JSON, no id or title, no dates …) is a bad line: it is
counted with its line number and a reason, and never written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from papersys.ingest.fields import (
    clean_text,
    first_and_last_version,
    format_author,
    normalize_id,
    optional_text,
    parse_iso_date,
    parse_rfc2822_date,
    split_author_string,
    split_categories,
)
from papersys.ingest.records import MetadataBatch
from papersys.ingest.sets import RecordFilter
from papersys.store.ids import InvalidIdError

SOURCE = "snapshot"
MAX_BAD_SAMPLES = 10
_REASON_CHARS = 120


class BadRecord(ValueError):
    """A snapshot line that cannot become a metadata row; ``str()`` is the reason."""


@dataclass
class ChunkResult:
    """What one chunk of lines became: rows to spool, and counts for the report."""

    batch: MetadataBatch = field(default_factory=MetadataBatch)
    valid: int = 0  # lines that mapped to a row (kept or filtered out)
    filtered: int = 0  # valid rows the sets/categories filter dropped
    bad: int = 0
    bad_samples: list[tuple[int, str]] = field(default_factory=list)  # first few (line number, reason)
    newest: date | None = None  # newest update_date among valid rows


def _authors(record: dict[str, Any]) -> list[str]:
    parsed = record.get("authors_parsed")
    if isinstance(parsed, list) and parsed:
        names = []
        for entry in parsed:  # [keyname, forenames, suffix], sometimes with a 4th (affiliation) element
            if isinstance(entry, list) and entry:
                name = format_author(*entry[:3])
                if name:
                    names.append(name)
        return names
    raw = record.get("authors")
    return split_author_string(raw) if isinstance(raw, str) else []


def _version_dates(versions: object) -> tuple[date, date | None]:
    """``created`` and ``updated`` by the shared rule (``fields.first_and_last_version``): v1's date, and the
    highest version's when there are several."""
    if not isinstance(versions, list) or not versions:
        raise BadRecord("no versions")
    pairs = []
    for entry in versions:
        if not isinstance(entry, dict) or not isinstance(entry.get("created"), str):
            raise BadRecord("malformed versions")
        pairs.append((entry.get("version"), entry["created"]))
    chosen = first_and_last_version(pairs)
    if chosen is None:  # cannot happen: every date is a str
        raise BadRecord("no versions")
    first, last = chosen
    return _version_date(first), None if last is None else _version_date(last)


def _version_date(value: str) -> date:
    try:
        return parse_rfc2822_date(value)
    except (ValueError, TypeError, IndexError) as exc:
        raise BadRecord(f"unparseable version date {value!r}") from exc


def _text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return optional_text(value)
    raise BadRecord(f"{key} is not a string")


def map_record(record: object) -> dict[str, Any]:
    """One decoded JSON line → the keyword arguments of ``MetadataBatch.add``; raises BadRecord."""
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    raw_id = record.get("id")
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise BadRecord("missing id")
    try:
        arxiv_id = normalize_id(raw_id)
    except InvalidIdError:
        raise BadRecord(f"invalid id {raw_id!r}") from None
    title = record.get("title")
    title = clean_text(title) if isinstance(title, str) else ""
    if not title:
        raise BadRecord("missing title")
    abstract = _text(record, "abstract")
    if not abstract:
        raise BadRecord("missing abstract")
    categories = split_categories(_text(record, "categories"))
    if not categories:
        raise BadRecord("missing categories")
    update_date = record.get("update_date")
    try:
        datestamp = parse_iso_date(update_date) if isinstance(update_date, str) else None
    except ValueError:
        raise BadRecord(f"invalid update_date {update_date!r}") from None
    if datestamp is None:
        raise BadRecord("missing update_date")
    created, updated = _version_dates(record.get("versions"))
    return {
        "id": arxiv_id,
        "title": title,
        "abstract": abstract,
        "authors": _authors(record),
        "categories": categories,
        "created": created,
        "updated": updated,
        "doi": _text(record, "doi"),
        "journal_ref": _text(record, "journal-ref"),
        "comments": _text(record, "comments"),
        "license": _text(record, "license"),
        "datestamp": datestamp,
        "source": SOURCE,
    }


def parse_line(line: bytes | str) -> dict[str, Any]:
    """Decode and map one line; raises BadRecord with a short reason."""
    try:
        record = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise BadRecord("invalid JSON" if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8") from None
    try:
        return map_record(record)
    except BadRecord:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:  # a field of an odd type
        raise BadRecord(f"malformed record ({type(exc).__name__}: {exc})"[:_REASON_CHARS]) from exc


def map_chunk(
    lines: Sequence[bytes], first_line_no: int, keep: RecordFilter | None = None, *, samples_left: int = 0
) -> ChunkResult:
    """Map consecutive lines (numbered from ``first_line_no``); blank lines are skipped silently."""
    result = ChunkResult()
    add = result.batch.add
    filtering = keep is not None and keep.active
    newest = None
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = parse_line(line)
        except BadRecord as exc:
            result.bad += 1
            if len(result.bad_samples) < samples_left:
                result.bad_samples.append((first_line_no + offset, str(exc)[:_REASON_CHARS]))
            continue
        result.valid += 1
        stamp = row["datestamp"]
        if newest is None or stamp > newest:
            newest = stamp
        if filtering and keep is not None and not keep.keeps(row["categories"]):
            result.filtered += 1
            continue
        add(**row)
    result.newest = newest
    return result
