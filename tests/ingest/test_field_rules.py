"""One set of field rules (``papersys/ingest/fields.py``) behind the three metadata mappers, checked on real records.

- the scalar and the polars form of every rule agree, value by value, on the real field values;
- the page fast path (XSLT + polars) equals the tree walker field by field on every real OAI record;
- the snapshot mapper's row is the rules applied to the Kaggle line, and the same paper rendered as an OAI
  record in either format comes out of both OAI paths as the same row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from papersys.ingest.fields import (
    AUTHOR_PARTS,
    authors_expr,
    categories_expr,
    clean_text,
    clean_text_expr,
    format_author,
    id_expr,
    iso_date_expr,
    normalize_id,
    optional_text,
    optional_text_expr,
    parse_iso_date,
    split_author_string,
    split_categories,
    valid_id_expr,
    version_dates,
)
from papersys.ingest.oai import parse_page
from papersys.ingest.page_xslt import AUTHOR, PART, flatten
from papersys.ingest.parse import parse_page_records
from papersys.ingest.records import MetadataBatch
from papersys.ingest.snapshot.parse import parse_line
from papersys.ingest.walker import parse_records
from papersys.store.metadata import COLUMNS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = FIXTURES / "arxiv-real"
OAI_PAGES = sorted((REAL / "oai").glob("*.xml")) + [
    FIXTURES / "oai" / name
    for name in (
        "arxiv_legacy_ListRecords_arXivRaw_with_token.xml",
        "arxiv_legacy_GetRecord_arXivRaw.xml",
        "arxiv_legacy_ListRecords_arXiv_after_503.xml",
    )
]
KAGGLE = (REAL / "kaggle_sample_lines.jsonl", REAL / "kaggle_sample_variants.jsonl")
OAI_HEAD = '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'
OAI_TAIL = "</ListRecords></OAI-PMH>"


def kaggle_records() -> Iterator[dict[str, Any]]:
    for path in KAGGLE:
        for line in path.read_bytes().splitlines():
            yield json.loads(line)


def flattened_pages() -> pl.DataFrame:
    """Every real OAI record as the fast path's XSLT hands it to polars (one string per field)."""
    frames = [flatten(parse_page(page.read_bytes())) for page in OAI_PAGES]
    return pl.concat([frame for frame in frames if frame is not None])


def _or_none(rule: Callable[[str], object], value: str) -> object:
    """The scalar rule's value, None where it raises (the polars forms give null there)."""
    try:
        return rule(value)
    except ValueError:
        return None


def assert_agree(values: list[str], scalar: Callable[[str], object], vectorised: Callable[[str], pl.Expr]) -> None:
    assert values
    got = pl.DataFrame({"v": values}, schema={"v": pl.String()}).select(vectorised("v")).to_series().to_list()
    want = [_or_none(scalar, value) for value in values]
    mismatches = [(v, g, w) for v, g, w in zip(values, got, want, strict=True) if g != w]
    assert not mismatches, mismatches[:5]


# odd values real records lack: unicode spaces, control whitespace, compact and broken dates, bad ids
ODD_TEXT = ["", " ", "  a\n\tb\u00a0c\u2003 ", "\x85x\u3000y\x0b", "a\u200bb", "\u2028"]
ODD_DATES = ["", " ", "2024-01-05", " 2024-01-05T10:00:00Z", "20240105", "2024-1-5", "2024-13-01", "2024-W01-1", "x"]
ODD_IDS = ["oai:arXiv.org:2401.00001v2", " hep-th/9901001 ", "solv-int/9901001v3", "math.AG/0101001", "2401.0001"]
ODD_IDS += ["not-an-id", "", "2401.00001v", "oai:arXiv.org:", "HEP-TH/9901001"]


def test_text_rules_agree_on_real_values() -> None:
    pages = flattened_pages()
    kaggle = list(kaggle_records())
    texts = pages["title"].to_list() + pages["abstract"].to_list() + [r["title"] for r in kaggle] + ODD_TEXT
    texts += [r["abstract"] for r in kaggle]
    assert_agree(texts, clean_text, clean_text_expr)
    optional = [pages[c].to_list() for c in ("doi", "journal_ref", "comments", "license")]
    optional_values = [v for column in optional for v in column] + ODD_TEXT
    optional_values += [r[k] for r in kaggle for k in ("doi", "journal-ref", "comments", "license") if r[k] is not None]
    assert_agree(optional_values, optional_text, optional_text_expr)


def test_category_rule_agrees_on_real_values() -> None:
    values = flattened_pages()["categories"].to_list() + [r["categories"] for r in kaggle_records()]
    values += ["cs.LG  stat.ML cs.LG", "a\u2003b\u00a0a", " ", ""]
    assert_agree(values, split_categories, categories_expr)


def test_date_rule_agrees_on_real_values() -> None:
    pages = flattened_pages()
    values = pages["datestamp"].to_list() + pages["created"].to_list() + pages["updated"].to_list() + ODD_DATES
    values += [r["update_date"] for r in kaggle_records()]
    assert_agree(values, parse_iso_date, iso_date_expr)


def test_id_rule_agrees_on_real_values() -> None:
    values = flattened_pages()["identifier"].to_list() + [r["id"] for r in kaggle_records()] + ODD_IDS

    def vectorised(column: str) -> pl.Expr:
        return pl.when(valid_id_expr(id_expr(column))).then(id_expr(column))

    assert_agree(values, normalize_id, vectorised)


def _joined(authors: list[tuple[str | None, str | None, str | None]]) -> str:
    """Authors as the XSLT flattens them: AUTHOR_PARTS joined by PART, every author ended by AUTHOR."""
    out = []
    for keyname, forenames, suffix in authors:
        parts = {"keyname": keyname, "forenames": forenames, "suffix": suffix}
        out.append(PART.join(parts[p] or "" for p in AUTHOR_PARTS) + AUTHOR)
    return "".join(out)


def test_author_rule_agrees_on_real_values() -> None:
    def scalar(joined: str) -> list[str]:
        names = []
        for author in joined.split(AUTHOR)[:-1]:
            parts = dict(zip(AUTHOR_PARTS, author.split(PART), strict=True))
            if name := format_author(parts["keyname"], parts["forenames"], parts["suffix"]):
                names.append(name)
        return names

    def vectorised(column: str) -> pl.Expr:
        return authors_expr(column, author_sep=AUTHOR, part_sep=PART)

    pages = flattened_pages()
    values = pages.filter(pl.col("fmt") == "a")["authors"].to_list()
    # the snapshot's [keyname, forenames, suffix(, affiliation)] through the same separators
    values += [_joined([(e[0], e[1], e[2]) for e in r["authors_parsed"]]) for r in kaggle_records()]
    values += [_joined([(" van der\n Berg ", " J.\u00a0A. ", None), ("", " ", ""), ("Ng", None, "Jr")]), ""]
    assert_agree(values, scalar, vectorised)


def _rows_by_id(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in frame.to_dicts()}


def assert_same_rows(fast: pl.DataFrame, reference: pl.DataFrame) -> None:
    """Field by field, record by record (a failure names the record and the column)."""
    assert list(fast.columns) == list(COLUMNS) == list(reference.columns)
    fast_rows, reference_rows = _rows_by_id(fast), _rows_by_id(reference)
    assert fast_rows.keys() == reference_rows.keys()
    for arxiv_id, row in reference_rows.items():
        for column in COLUMNS:
            assert (arxiv_id, column, fast_rows[arxiv_id][column]) == (arxiv_id, column, row[column])
    assert fast.equals(reference)  # same order and dtypes too


def parse_both(page: bytes) -> tuple[Any, Any]:
    root = parse_page(page)
    batch = MetadataBatch()
    stats = parse_records(root, batch)
    return parse_page_records(root), (batch.records(), batch.deletion_frame(), stats)


@pytest.mark.parametrize("page", OAI_PAGES, ids=lambda p: p.name)
def test_fast_path_equals_the_walker_on_every_real_record(page: Path) -> None:
    fast, (records, deletions, stats) = parse_both(page.read_bytes())
    assert stats.records > 0 and stats.invalid == 0
    assert_same_rows(fast.records, records)
    assert fast.deletions.equals(deletions)
    assert fast.stats == stats


def test_snapshot_rows_are_the_rules_applied_to_the_kaggle_line() -> None:
    for record in kaggle_records():
        row = parse_line(json.dumps(record))
        versions = [(v["version"], v["created"]) for v in record["versions"]]
        assert row == {
            "id": normalize_id(record["id"]),
            "title": clean_text(record["title"]),
            "abstract": optional_text(record["abstract"]),
            "authors": [n for e in record["authors_parsed"] if (n := format_author(e[0], e[1], e[2]))],
            "categories": split_categories(record["categories"]),
            "created": version_dates(versions)[0],
            "updated": version_dates(versions)[1],
            "doi": optional_text(record["doi"]),
            "journal_ref": optional_text(record["journal-ref"]),
            "comments": optional_text(record["comments"]),
            "license": optional_text(record["license"]),
            "datestamp": parse_iso_date(record["update_date"]),
            "source": "snapshot",
        }
        without_parsed = {k: v for k, v in record.items() if k != "authors_parsed"}
        assert parse_line(json.dumps(without_parsed))["authors"] == split_author_string(record["authors"])


def test_two_snapshot_versions_of_a_paper_give_the_same_row() -> None:
    first, variants = (path.read_bytes().splitlines() for path in KAGGLE)
    by_id = {json.loads(line)["id"]: line for line in first}
    assert len(variants) == 3
    for variant in variants:
        line = by_id[json.loads(variant)["id"]]
        assert variant != line  # raw UTF-8 against \\u escapes
        assert parse_line(variant) == parse_line(line)


# --- the same paper over OAI: each Kaggle line rendered as the record arXiv serves in either format ------


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _element(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{_xml(value)}</{name}>"


def _shared_elements(r: dict[str, Any]) -> str:
    return (
        _element("title", r["title"])
        + _element("categories", r["categories"])
        + "".join(_element(tag, r[key]) for tag, key in (("comments", "comments"), ("journal-ref", "journal-ref")))
        + _element("doi", r["doi"])
        + _element("license", r["license"])
        + _element("abstract", r["abstract"])
    )


def _record(r: dict[str, Any], metadata: str) -> str:
    return (
        f"<record><header><identifier>oai:arXiv.org:{r['id']}</identifier><datestamp>{r['update_date']}"
        f"</datestamp></header><metadata>{metadata}</metadata></record>"
    )


def _raw_record(r: dict[str, Any]) -> str:
    versions = "".join(
        f'<version version="{v["version"]}"><date>{v["created"]}</date><size>1kb</size></version>'
        for v in r["versions"]
    )
    body = f"<id>{r['id']}</id>{versions}{_element('authors', r['authors'])}{_shared_elements(r)}"
    return _record(r, f'<arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/">{body}</arXivRaw>')


def _day(rfc2822: str) -> str:
    return parsedate_to_datetime(rfc2822).date().isoformat()


def _arxiv_record(r: dict[str, Any]) -> str:
    """The ``arXiv`` format: v1's date as <created>, the last version's as <updated> when there are several."""
    versions = sorted(r["versions"], key=lambda v: int(v["version"][1:]))
    dates = f"<created>{_day(versions[0]['created'])}</created>"
    if len(versions) > 1:
        dates += f"<updated>{_day(versions[-1]['created'])}</updated>"
    authors = "".join(
        "<author>"
        + "".join(_element(tag, e[i] or None) for tag, i in (("keyname", 0), ("forenames", 1), ("suffix", 2)))
        + "".join(_element("affiliation", a) for a in e[3:])
        + "</author>"
        for e in r["authors_parsed"]
    )
    body = f"<id>{r['id']}</id>{dates}<authors>{authors}</authors>{_shared_elements(r)}"
    return _record(r, f'<arXiv xmlns="http://arxiv.org/OAI/arXiv/">{body}</arXiv>')


def _snapshot_frame(records: list[dict[str, Any]], *, source: str) -> pl.DataFrame:
    batch = MetadataBatch()
    for record in records:
        batch.add(**{**parse_line(json.dumps(record)), "source": source})
    return batch.records()


@pytest.mark.parametrize("fmt", ["arXiv", "arXivRaw"])
def test_a_kaggle_line_and_the_same_paper_over_oai_give_the_same_row(fmt: str) -> None:
    records = [json.loads(line) for line in KAGGLE[0].read_bytes().splitlines()]  # the variants repeat ids
    render = _arxiv_record if fmt == "arXiv" else _raw_record
    page = (OAI_HEAD + "".join(render(r) for r in records) + OAI_TAIL).encode()
    fast, (walked, _deletions, stats) = parse_both(page)
    assert stats.records == len(records)
    assert_same_rows(fast.records, walked)
    # arXivRaw carries the author string only: the snapshot mapper reads it when authors_parsed is absent
    if fmt == "arXivRaw":
        records = [{k: v for k, v in r.items() if k != "authors_parsed"} for r in records]
    expected = _snapshot_frame(records, source="oai").sort("id")
    assert_same_rows(fast.records.sort("id"), expected)


# --- odd input the three mappers once treated differently ----------------------------------------------


def _arxiv(arxiv_id: str, *, inner: str, datestamp: str = "2024-01-05", status: str = "") -> str:
    header = f"<header{f' status={status!r}' if status else ''}>"
    return (
        f"{header}<identifier>oai:arXiv.org:{arxiv_id}</identifier><datestamp>{datestamp}</datestamp></header>"
        f'<metadata><arXiv xmlns="http://arxiv.org/OAI/arXiv/">{inner}</arXiv></metadata>'
    )


def _raw(arxiv_id: str, *, versions: str) -> str:
    return (
        f"<header><identifier>oai:arXiv.org:{arxiv_id}</identifier><datestamp>2024-01-05</datestamp></header>"
        f'<metadata><arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/"><title>T</title><authors>A. B</authors>'
        f"<categories>cs.LG</categories>{versions}<abstract>A</abstract></arXivRaw></metadata>"
    )


_BASE = "<authors><author><keyname>Doe</keyname></author></authors><categories>cs.LG</categories><abstract>A</abstract>"
ODD_RECORDS = [
    _arxiv("2401.00001", inner=f"<created>2024-01-01</created><updated>soon</updated><title>T</title>{_BASE}"),
    _arxiv("2401.00002", inner=f"<created>2024-01-01</created><title> \n </title>{_BASE}"),
    _arxiv("2401.00003", inner=f"<created>2024-01-01</created><title>first</title><title>second</title>{_BASE}"),
    _arxiv("2401.00004", inner=f"<created>20240101</created><title>T</title>{_BASE}"),
    _arxiv("2401.00005", inner=f"<created>2024-01-01</created><title>T</title>{_BASE}", datestamp="2024-1-5"),
    _arxiv("2401.00006", inner="", status=" deleted "),
    _raw(
        "2401.00007",
        versions="<version><date>Tue, 2 Jan 2024 10:00:00 GMT</date></version>"
        "<version version='v2'><date>Wed, 3 Jan 2024 10:00:00 GMT</date></version>",
    ),
    _raw("2401.00008", versions="<version version='v1'><date/></version>"),
    _raw(
        "2401.00009",
        versions="<version version='v2'><date>Wed, 3 Jan 2024 10:00:00 GMT</date></version>"
        "<version version='v1'><date>Mon, 1 Jan 2024 10:00:00 GMT</date></version><version version='v3'><date/>"
        "</version>",
    ),
]


def test_odd_records_go_the_same_way_on_both_oai_paths() -> None:
    page = (OAI_HEAD + "".join(f"<record>{r}</record>" for r in ODD_RECORDS) + OAI_TAIL).encode()
    fast, (records, deletions, stats) = parse_both(page)
    assert_same_rows(fast.records, records)
    assert fast.deletions.equals(deletions) and fast.stats == stats
    rows = _rows_by_id(records)
    assert set(rows) == {"2401.00003", "2401.00007", "2401.00009"}
    assert rows["2401.00003"]["title"] == "first"  # the first element, as XSLT's value-of reads it
    assert (rows["2401.00007"]["created"], rows["2401.00007"]["updated"]) == (date(2024, 1, 2), date(2024, 1, 3))
    assert (rows["2401.00009"]["created"], rows["2401.00009"]["updated"]) == (date(2024, 1, 1), date(2024, 1, 3))
    assert deletions["id"].to_list() == ["2401.00006"]
    assert stats.invalid == 5  # bad <updated>, blank title, compact and unpadded dates, a dateless v1 alone
