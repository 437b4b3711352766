"""Kaggle snapshot lines → metadata rows (pure mapping), and the reasons a line is rejected."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from papersys.ingest.sets import RecordFilter
from papersys.ingest.snapshot.parse import BadRecord, map_chunk, parse_line


def kaggle(**fields: Any) -> dict[str, Any]:
    """One snapshot record as the Kaggle file has it (fields override the defaults)."""
    record: dict[str, Any] = {
        "id": "0704.0001",
        "submitter": "Pavel Nadolsky",
        "authors": "C. Bal\\'azs, E. L. Berger, P. M. Nadolsky, C.-P. Yuan",
        "title": "Calculation of prompt diphoton production cross sections at Tevatron and\n  LHC energies",
        "comments": "37 pages, 15 figures; published version",
        "journal-ref": "Phys.Rev.D76:013009,2007",
        "doi": "10.1103/PhysRevD.76.013009",
        "report-no": "ANL-HEP-PR-07-12",
        "categories": "hep-ph",
        "license": None,
        "abstract": "  A fully differential calculation in perturbative quantum chromodynamics is\npresented.\n",
        "versions": [
            {"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"},
            {"version": "v2", "created": "Tue, 24 Jul 2007 20:10:27 GMT"},
        ],
        "update_date": "2008-11-13",
        "authors_parsed": [
            ["Balázs", "C.", ""],
            ["Berger", "E. L.", ""],
            ["Nadolsky", "P. M.", ""],
            ["Yuan", "C. -P.", ""],
        ],
    }
    record.update(fields)
    return record


def line(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode() + b"\n"


def test_a_full_record_maps_to_every_column() -> None:
    row = parse_line(line(kaggle()))
    assert row == {
        "id": "0704.0001",
        "title": "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies",
        "abstract": "A fully differential calculation in perturbative quantum chromodynamics is presented.",
        "authors": ["C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C. -P. Yuan"],
        "categories": ["hep-ph"],
        "created": date(2007, 4, 2),
        "updated": date(2007, 7, 24),
        "doi": "10.1103/PhysRevD.76.013009",
        "journal_ref": "Phys.Rev.D76:013009,2007",
        "comments": "37 pages, 15 figures; published version",
        "license": None,
        "datestamp": date(2008, 11, 13),
        "source": "snapshot",
    }


def test_versions_created_is_v1_updated_is_the_highest_and_single_versions_have_no_updated() -> None:
    shuffled = [
        {"version": "v3", "created": "Fri, 5 Jan 2024 10:00:00 GMT"},
        {"version": "v1", "created": "Mon, 07 Oct 2019 10:45:05 GMT"},
        {"version": "v10", "created": "Sat, 1 Jun 2024 00:00:00 GMT"},
    ]
    row = parse_line(line(kaggle(id="1910.01234", versions=shuffled)))
    assert (row["created"], row["updated"]) == (date(2019, 10, 7), date(2024, 6, 1))
    single = parse_line(line(kaggle(versions=[{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}])))
    assert (single["created"], single["updated"]) == (date(2007, 4, 2), None)


def test_authors_suffixes_and_fallback_to_the_author_string() -> None:
    parsed = [["King", "Martin Luther", "Jr"], ["Collaboration", "", ""], ["Smith", "J.", "", "MIT"], ["", "", ""]]
    assert parse_line(line(kaggle(authors_parsed=parsed)))["authors"] == [
        "Martin Luther King Jr",
        "Collaboration",
        "J. Smith",
    ]
    fallback = parse_line(line(kaggle(authors_parsed=None, authors="A. One, B. Two and C. Three")))
    assert fallback["authors"] == ["A. One", "B. Two", "C. Three"]


def test_ids_lose_their_version_and_old_style_ids_keep_their_archive() -> None:
    assert parse_line(line(kaggle(id="0704.0001v3")))["id"] == "0704.0001"
    assert parse_line(line(kaggle(id="solv-int/9901001")))["id"] == "solv-int/9901001"
    assert parse_line(line(kaggle(id="math.AG/0101001")))["id"] == "math.AG/0101001"


def test_blank_optional_fields_are_null_and_categories_keep_primary_first() -> None:
    row = parse_line(line(kaggle(doi="  ", comments=None, categories="math-ph  math.MP hep-th math-ph")))
    assert row["doi"] is None and row["comments"] is None
    assert row["categories"] == ["math-ph", "math.MP", "hep-th"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id": "0704.0001", "title": ', "invalid JSON"),
        (b'{"id": "\xff\xfe"}\n', "invalid UTF-8"),
        (b"[1, 2]\n", "not a JSON object"),
        (line(kaggle(id=None)), "missing id"),
        (line(kaggle(id="   ")), "missing id"),
        (line(kaggle(id=704.0001)), "missing id"),
        (line(kaggle(id="hello/world")), "invalid id 'hello/world'"),
        (line(kaggle(title="  \n ")), "missing title"),
        (line(kaggle(abstract=None)), "missing abstract"),
        (line(kaggle(categories="")), "missing categories"),
        (line(kaggle(update_date=None)), "missing update_date"),
        (line(kaggle(update_date="13/11/2008")), "invalid update_date '13/11/2008'"),
        (line(kaggle(versions=[])), "no versions"),
        (line(kaggle(versions=[{"version": "v1"}])), "malformed versions"),
        (line(kaggle(versions=[{"version": "v1", "created": "yesterday"}])), "unparseable version date 'yesterday'"),
        (line(kaggle(doi=["10.1/x"])), "doi is not a string"),
    ],
)
def test_bad_lines_carry_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadRecord) as err:
        parse_line(raw)
    assert str(err.value) == reason


def test_map_chunk_counts_filters_and_numbers_bad_lines() -> None:
    lines = [
        line(kaggle(id="0704.0001", categories="hep-ph", update_date="2008-11-13")),
        b"\n",  # blank: skipped, neither a record nor a bad line
        b"garbage\n",
        line(kaggle(id="0704.0002", categories="cs.LG stat.ML", update_date="2024-03-01")),
        line(kaggle(id="0704.0003", title="")),
        line(kaggle(id="0704.0004", categories="math-ph", update_date="2020-01-01")),
    ]
    result = map_chunk(lines, 101, RecordFilter.build(sets=["physics"]), samples_left=1)
    assert (result.valid, result.filtered, result.bad, len(result.batch)) == (3, 1, 2, 2)
    assert result.bad_samples == [(103, "invalid JSON")]  # only as many samples as asked for
    assert result.newest == date(2024, 3, 1)  # newest over valid lines, filtered ones included
    assert result.batch.records()["id"].to_list() == ["0704.0001", "0704.0004"]
