"""Category → OAI set membership (arXiv's set specs), and the sets/categories keep-filter."""

from __future__ import annotations

from datetime import date

import pytest

from papersys.ingest.sets import RecordFilter, canonical_category, category_sets, in_sets

# the sets arXiv's legacy endpoint listed (ListSets), every one of which the new endpoint keeps
LEGACY_SETS = [
    "cs", "econ", "eess", "math", "physics", "physics:astro-ph", "physics:cond-mat", "physics:gr-qc",
    "physics:hep-ex", "physics:hep-lat", "physics:hep-ph", "physics:hep-th", "physics:math-ph", "physics:nlin",
    "physics:nucl-ex", "physics:nucl-th", "physics:physics", "physics:quant-ph", "q-bio", "q-fin", "stat",
]  # fmt: skip


@pytest.mark.parametrize(
    ("category", "sets"),
    [
        ("cs.LG", {"cs", "cs:cs", "cs:cs:LG"}),
        ("hep-th", {"physics", "physics:hep-th"}),
        ("astro-ph", {"physics", "physics:astro-ph"}),  # bare legacy archive as a category
        ("astro-ph.CO", {"physics", "physics:astro-ph", "physics:astro-ph:CO"}),
        ("cond-mat.mtrl-sci", {"physics", "physics:cond-mat", "physics:cond-mat:mtrl-sci"}),
        ("physics.optics", {"physics", "physics:physics", "physics:physics:optics"}),
        ("q-bio.NC", {"q-bio", "q-bio:q-bio", "q-bio:q-bio:NC"}),
        ("stat.ML", {"stat", "stat:stat", "stat:stat:ML"}),
        ("econ.EM", {"econ", "econ:econ", "econ:econ:EM"}),
        ("eess.SP", {"eess", "eess:eess", "eess:eess:SP"}),
        ("q-fin.ST", {"q-fin", "q-fin:q-fin", "q-fin:q-fin:ST"}),
        # math-ph is a physics archive, and an alias of math.MP: a paper in either is in both's sets
        ("math-ph", {"physics", "physics:math-ph", "math", "math:math", "math:math:MP"}),
        ("math.MP", {"physics", "physics:math-ph", "math", "math:math", "math:math:MP"}),
        ("cs.SY", {"cs", "cs:cs", "cs:cs:SY", "eess", "eess:eess", "eess:eess:SY"}),
        # defunct archives count as the category that subsumed them
        ("solv-int", {"physics", "physics:nlin", "physics:nlin:SI"}),
        ("chao-dyn", {"physics", "physics:nlin", "physics:nlin:CD"}),
        ("alg-geom", {"math", "math:math", "math:math:AG"}),
        ("funct-an", {"math", "math:math", "math:math:FA"}),
        ("q-alg", {"math", "math:math", "math:math:QA"}),
        ("cmp-lg", {"cs", "cs:cs", "cs:cs:CL"}),
        ("mtrl-th", {"physics", "physics:cond-mat", "physics:cond-mat:mtrl-sci"}),
        ("bayes-an", {"physics", "physics:physics", "physics:physics:data-an"}),
        ("test.dis-nn", set()),
        ("nonsense", set()),
    ],
)
def test_category_sets(category: str, sets: set[str]) -> None:
    assert category_sets(category) == sets


def test_every_legacy_set_is_reachable_from_some_category() -> None:
    categories = ["cs.AI", "econ.GN", "eess.IV", "math.CO", "astro-ph.GA", "cond-mat.soft", "gr-qc", "hep-ex",
                  "hep-lat", "hep-ph", "hep-th", "math-ph", "nlin.SI", "nucl-ex", "nucl-th", "physics.optics",
                  "quant-ph", "q-bio.GN", "q-fin.CP", "stat.ME"]  # fmt: skip
    reachable = set().union(*(category_sets(c) for c in categories))
    assert set(LEGACY_SETS) <= reachable


def test_cross_lists_count() -> None:
    assert in_sets(["hep-th", "cs.LG"], ["cs"])  # a cross-list puts the paper in cs too
    assert in_sets(["hep-th", "cs.LG"], ["cs:cs:LG"])
    assert not in_sets(["hep-th", "cs.LG"], ["cs:cs:CV", "math"])
    assert not in_sets([], ["cs"])


def test_canonical_category() -> None:
    assert canonical_category("solv-int") == "nlin.SI"
    assert canonical_category("math.MP") == "math-ph"
    assert canonical_category("cs.LG") == "cs.LG"


def test_record_filter_sets_and_categories_both_apply() -> None:
    assert not RecordFilter.build().active
    assert RecordFilter.build().keeps(["anything"])
    by_set = RecordFilter.build(sets=["physics:hep-th", "cs"])
    assert by_set.keeps(["hep-th"]) and by_set.keeps(["math.AG", "cs.DM"])
    assert not by_set.keeps(["hep-ph"])
    by_cat = RecordFilter.build(categories=["cs.LG", "math-ph"])
    assert by_cat.keeps(["stat.ML", "cs.LG"])
    assert by_cat.keeps(["math.MP"])  # the alias of a listed category
    assert not by_cat.keeps(["cs.CV"])
    both = RecordFilter.build(sets=["cs"], categories=["stat.ML"])
    assert both.keeps(["cs.LG", "stat.ML"])
    assert not both.keeps(["stat.ML"])  # in the categories, not in the set
    assert not both.keeps(["cs.LG"])  # in the set, not in the categories


def test_category_names_cover_aliases_and_defunct_archives() -> None:
    from papersys.ingest.sets import category_names

    assert category_names(["math.MP"]) >= {"math.MP", "math-ph"}
    assert category_names(["nlin.SI"]) >= {"nlin.SI", "solv-int"}
    assert "cs.LG" not in category_names(["math.MP"])
    assert category_names(["cs.LG"]) == {"cs.LG"}


def test_harvest_filter_treats_aliases_as_one_category() -> None:
    from support.oai_records import Paper, render_record

    from papersys.ingest.oai import parse_page
    from papersys.ingest.parse import parse_page_records
    from papersys.ingest.sets import category_names

    papers = [
        Paper("2401.00001", date(2024, 1, 2), categories=("math-ph",)),
        Paper("2401.00002", date(2024, 1, 2), categories=("cs.LG",)),
        Paper("solv-int/9901001", date(2024, 1, 2), categories=("solv-int",)),
    ]
    page = (
        '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'
        + "".join(render_record(p, "arXiv") for p in papers)
        + "</ListRecords></OAI-PMH>"
    ).encode()
    parsed = parse_page_records(parse_page(page), categories=category_names(["math.MP", "nlin.SI"]))
    assert parsed.records["id"].to_list() == ["2401.00001", "solv-int/9901001"]
    assert parsed.stats.filtered == 1
