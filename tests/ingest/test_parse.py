"""Parsing real recorded arXiv pages (both formats) and hand-made edge cases into metadata rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from papersys.ingest.oai import _MalformedPage, parse_page
from papersys.ingest.parse import parse_page_records
from papersys.ingest.records import MetadataBatch
from papersys.ingest.walker import parse_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oai"
OAI_HEAD = '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'
OAI_TAIL = "</ListRecords></OAI-PMH>"


def parse_file(name: str, **kw: object) -> tuple[dict[str, dict[str, object]], object]:
    batch = MetadataBatch()
    stats = parse_records(parse_page((FIXTURES / name).read_bytes()), batch, **kw)  # type: ignore[arg-type]
    rows = {r["id"]: r for r in batch.records().to_dicts()}
    return rows, stats


def test_recorded_arxivraw_page() -> None:
    rows, stats = parse_file("arxiv_legacy_ListRecords_arXivRaw_with_token.xml")
    assert stats.records == 6 and stats.invalid == 0  # type: ignore[attr-defined]
    shetty = rows["0704.0471"]
    assert shetty["authors"] == ["D.V. Shetty", "S.J. Yennello", "G.A. Souliotis"]
    assert shetty["title"] == (
        "Density dependence of the symmetry energy and the nuclear equation of state: "
        "A Dynamical and Statistical model perspective"
    )
    assert shetty["abstract"].startswith(
        "The density dependence of the symmetry energy in the equation of state of isospin asymmetric nuclear matter"
    )
    assert '" stiff " and " soft "' in shetty["abstract"]  # &quot; entities decoded
    assert "\n" not in shetty["abstract"] and "  " not in shetty["abstract"]
    assert shetty["categories"] == ["nucl-ex", "nucl-th"] and shetty["primary_category"] == "nucl-ex"
    assert shetty["created"] == date(2007, 4, 3) and shetty["updated"] is None
    assert shetty["datestamp"] == date(2014, 11, 18)
    assert shetty["doi"] == "10.1103/PhysRevC.76.024606 10.1103/PhysRevC.76.039902"
    assert shetty["journal_ref"] == "Phys.Rev.C76:024606,2007; Erratum-ibid.C76:039902,2007"
    assert shetty["comments"] == "16 pages, 14 figures"
    assert shetty["source"] == "oai"
    richard = rows["0704.0716"]  # four versions: created = v1, updated = v4
    assert richard["created"] == date(2007, 4, 5)
    assert richard["updated"] == date(2008, 11, 14)
    assert richard["license"] == "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"


def test_recorded_arxiv_page_with_old_style_id() -> None:
    rows, _stats = parse_file("arxiv_legacy_ListRecords_arXiv_after_503.xml")
    assert set(rows) == {"1412.8544", "hep-th/9504118"}
    old = rows["hep-th/9504118"]
    assert old["authors"] == ["M. Requardt"]
    assert old["created"] == date(1995, 4, 24)
    assert old["primary_category"] == "hep-th"
    new = rows["1412.8544"]
    assert new["authors"] == ["Sander Uijlen", "Bas Westerbaan"]
    assert new["categories"][0] == "cs.DM"
    assert new["doi"] == "10.4204/EPTCS.172.11"


def test_getrecord_page_parses_too() -> None:
    rows, _ = parse_file("arxiv_legacy_GetRecord_arXivRaw.xml")
    assert list(rows) == ["1302.2146"]
    assert rows["1302.2146"]["updated"] is not None


def test_category_filter_keeps_records_listing_any_wanted_category() -> None:
    rows, stats = parse_file("arxiv_legacy_ListRecords_arXivRaw_with_token.xml", categories=["nucl-th"])
    assert set(rows) == {"0704.0471", "0704.1586"}
    assert stats.filtered == 4  # type: ignore[attr-defined]


def _page(*records: str) -> bytes:
    return (OAI_HEAD + "".join(records) + OAI_TAIL).encode()


def _arxiv(
    arxiv_id: str,
    *,
    datestamp: str = "2024-01-05",
    title: str = "T",
    abstract: str = "A",
    authors: str = "<author><keyname>Doe</keyname><forenames>Jane</forenames></author>",
    extra: str = "",
) -> str:
    return (
        f"<record><header><identifier>oai:arXiv.org:{arxiv_id}</identifier><datestamp>{datestamp}"
        f'</datestamp><setSpec>cs</setSpec></header><metadata><arXiv xmlns="http://arxiv.org/OAI/arXiv/">'
        f"<id>{arxiv_id}</id><created>2024-01-01</created><authors>{authors}</authors><title>{title}</title>"
        f"<categories>cs.LG stat.ML cs.LG</categories>{extra}<abstract>{abstract}</abstract></arXiv></metadata>"
        "</record>"
    )


def test_tex_unicode_suffixes_and_deletions() -> None:
    title = "  The $\\alpha$-Dirichlet\n   problem for Schr\u00f6dinger &amp; \u4e2d\u6587 \U0001f600  "
    deleted = (
        '<record><header status="deleted"><identifier>oai:arXiv.org:2401.00009</identifier>'
        "<datestamp>2024-01-06</datestamp></header></record>"
    )
    authors = (
        "<author><keyname>King</keyname><forenames>Martin L.</forenames><suffix>Jr</suffix></author>"
        "<author><keyname>Ng</keyname></author>"
    )
    batch = MetadataBatch()
    stats = parse_records(parse_page(_page(_arxiv("2401.00001v2", title=title, authors=authors), deleted)), batch)
    assert (stats.records, stats.deleted) == (1, 1)
    row = batch.records().row(0, named=True)
    assert row["id"] == "2401.00001"
    assert row["title"] == "The $\\alpha$-Dirichlet problem for Schr\u00f6dinger & \u4e2d\u6587 \U0001f600"
    assert row["authors"] == ["Martin L. King Jr", "Ng"]
    assert row["categories"] == ["cs.LG", "stat.ML"]  # duplicates dropped, primary first
    assert batch.deletion_frame().to_dicts() == [{"id": "2401.00009", "datestamp": date(2024, 1, 6)}]


@pytest.mark.parametrize(
    "record",
    [
        _arxiv("not-an-id"),
        _arxiv("2401.00002", title=""),
        _arxiv("2401.00002", abstract=""),
        _arxiv("2401.00002", datestamp="yesterday"),
    ],
)
def test_unusable_records_are_counted_not_stored(record: str) -> None:
    batch = MetadataBatch()
    stats = parse_records(parse_page(_page(record, _arxiv("2401.00003"))), batch)
    assert stats.invalid == 1 and stats.records == 1
    assert batch.records()["id"].to_list() == ["2401.00003"]


@pytest.mark.parametrize(
    "content",
    [
        _page(_arxiv("2401.00001"))[:-40],  # truncated mid-document
        b"<html><body>Retry after 10 seconds</body></html>",
        b"",
    ],
)
def test_malformed_pages_are_refused_not_repaired(content: bytes) -> None:
    with pytest.raises(_MalformedPage):
        parse_page(content)


def _synthetic_page(prefix: str, **kw: object) -> bytes:
    from support.oai_records import render_record
    from support.papers import synthetic_papers

    papers = synthetic_papers(
        400,
        seed=11,
        start=date(2024, 1, 1),
        days=20,
        deleted_fraction=0.05,
        special_fraction=0.4,
        old_style_fraction=0.1,
        **kw,
    )  # type: ignore[arg-type]
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'
    return (head + "".join(render_record(p, prefix) for p in papers) + "</ListRecords></OAI-PMH>").encode()


def _assert_fast_equals_reference(root: object, **kw: object) -> None:
    batch = MetadataBatch()
    stats = parse_records(root, batch, **kw)  # type: ignore[arg-type]
    fast = parse_page_records(root, **kw)  # type: ignore[arg-type]
    assert fast.records.equals(batch.records())
    assert fast.deletions.equals(batch.deletion_frame())
    assert fast.stats == stats


@pytest.mark.parametrize("prefix", ["arXiv", "arXivRaw"])
def test_fast_path_gives_exactly_the_reference_rows(prefix: str) -> None:
    root = parse_page(_synthetic_page(prefix))
    _assert_fast_equals_reference(root)
    _assert_fast_equals_reference(root, categories=["cs.LG", "math.AG", "hep-th"])


@pytest.mark.parametrize(
    "name",
    [
        "arxiv_legacy_ListRecords_arXivRaw_with_token.xml",
        "arxiv_legacy_ListRecords_arXiv_after_503.xml",
        "arxiv_legacy_GetRecord_arXivRaw.xml",
    ],
)
def test_fast_path_on_recorded_pages(name: str) -> None:
    _assert_fast_equals_reference(parse_page((FIXTURES / name).read_bytes()))


def test_text_containing_the_fast_paths_separators_falls_back_to_the_tree_walker() -> None:
    page = _page(_arxiv("2401.00001", title="odd \ue000 title \ue001"), _arxiv("2401.00002"))
    parsed = parse_page_records(parse_page(page))
    assert parsed.records["title"].to_list() == ["odd \ue000 title \ue001", "T"]


def test_unusable_records_are_counted_the_same_on_the_fast_path() -> None:
    page = _page(
        _arxiv("not-an-id"),
        _arxiv("2401.00002", title=""),
        _arxiv("2401.00003", datestamp="nope"),
        _arxiv("2401.00004"),
    )
    _assert_fast_equals_reference(parse_page(page))
    assert parse_page_records(parse_page(page)).stats.invalid == 3
