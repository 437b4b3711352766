"""Keyword and hybrid search over real arXiv papers: a real tantivy index, the real MiniLM for the semantic
side. Authors, ids and phrases find exactly what they name; fusion; the index follows ingest edits and
deletions; bad query syntax is one clear error."""

from __future__ import annotations

import re
import shutil
import unicodedata
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from support.builders import frame, row
from support.search_support import make_config

from papersys import Library, service
from papersys.config import Config
from papersys.errors import SearchError, UsageError
from papersys.search import keyword
from papersys.search.query import QueryOptions, rrf
from papersys.search.text_build import read_text_manifest
from papersys.store.layout import Layout
from papersys.store.metadata import upsert


@pytest.fixture(scope="module")
def indexed(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 200-paper store with its full-text index built too (tests copy it before changing it)."""
    root = tmp_path_factory.mktemp("keyword")
    shutil.copytree(built / "data", root / "data", symlinks=True)
    report = service.index(make_config(root, ann_min_rows=0, tail_rows=0), text_only=True)
    assert report.text is not None and report.text.action == "built" and report.text.count == 200
    return root


@pytest.fixture
def store(indexed: Path, tmp_path: Path) -> Iterator[Config]:
    shutil.copytree(indexed / "data", tmp_path / "data", symlinks=True)
    yield make_config(tmp_path, ann_min_rows=0, tail_rows=0)


@pytest.fixture(scope="module")
def library(indexed: Path) -> Library:
    return Library.open(make_config(indexed, ann_min_rows=0, tail_rows=0))


def _tokens(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.findall(r"[a-z0-9]+", folded)


def _contains(haystack: list[str], needle: list[str]) -> bool:
    return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def test_author_search_finds_every_paper_by_that_author(library: Library, papers: pl.DataFrame) -> None:
    by_author: dict[str, set[str]] = {}
    for paper in papers.iter_rows(named=True):
        for name in paper["authors"]:
            by_author.setdefault(name, set()).add(paper["id"])
    checked = 0
    for name, ids in sorted(by_author.items(), key=lambda item: (-len(item[1]), item[0]))[:40]:
        result = library.search(f'author:"{name}"', k=50, mode="keyword")
        found = {h.paper.id for h in result.hits}
        assert ids <= found, (name, ids - found)
        # nothing else unless another paper has an author whose name holds these words in this order
        for hit in result.hits:
            assert any(_contains(_tokens(a), _tokens(name)) for a in hit.paper.authors), (name, hit.paper.authors)
        checked += 1
    assert checked == 40 and max(len(ids) for ids in by_author.values()) >= 2
    # a name typed bare: keyword ranks that author's papers first; hybrid treats it as the author
    for name, ids in [(n, i) for n, i in by_author.items() if len(i) >= 2][:5]:
        for mode in ("keyword", "hybrid"):
            top = {h.paper.id for h in library.search(name, k=len(ids), mode=mode).hits}
            assert top == ids, (name, mode)


def test_an_id_query_returns_that_paper_first(library: Library, papers: pl.DataFrame) -> None:
    paper = papers.row(42, named=True)
    for query in (paper["id"], paper["id"] + "v2", f"https://arxiv.org/abs/{paper['id']}v1", f"arXiv:{paper['id']}"):
        for mode in ("hybrid", "keyword", "semantic"):
            result = library.search(query, k=5, mode=mode)
            assert result.hits[0].paper.id == paper["id"], (query, mode)
    hybrid = library.search(paper["id"], k=5)
    assert hybrid.mode == "hybrid" and len(hybrid.hits) == 5  # then its nearest neighbours
    assert len({h.paper.id for h in hybrid.hits}) == 5
    # id: inside a longer query restricts to that paper; a bare id among words ranks it first
    assert [h.paper.id for h in library.search(f"id:{paper['id']} networks", k=5, mode="keyword").hits] == [paper["id"]]
    assert library.search(f"{paper['id']} learning", k=5, mode="keyword").hits[0].paper.id == paper["id"]
    with pytest.raises(SearchError, match="not in the store"):
        library.search("2412.99999", k=3)


def test_a_phrase_query_matches_only_the_phrase(library: Library, papers: pl.DataFrame) -> None:
    phrase = "large language models"
    # stemming folds plurals ("large language model" matches too): compare on crudely stemmed tokens
    stems = [w.rstrip("s") for w in _tokens(phrase)]

    def stemmed(paper: dict[str, str]) -> list[str]:
        return [t.rstrip("s") for t in _tokens(paper["title"] + " . " + paper["abstract"])]

    rows = list(papers.iter_rows(named=True))
    with_phrase = {p["id"] for p in rows if _contains(stemmed(p), stems)}
    # papers with the three words, not in this order: a bag-of-words query finds them, the phrase must not
    scattered = {p["id"] for p in rows if set(stems) <= set(stemmed(p)) and p["id"] not in with_phrase}
    assert len(with_phrase) >= 3 and scattered
    found = {h.paper.id for h in library.search(f'"{phrase}"', k=200, mode="keyword").hits}
    assert found == with_phrase
    loose = {h.paper.id for h in library.search(phrase, k=200, mode="keyword").hits}
    assert scattered & loose  # the same words unquoted do reach them


def test_phrases_are_looked_up_by_word_pairs_without_false_matches(store: Config, papers: pl.DataFrame) -> None:
    """Quoted phrases of common words go through their pair terms: a pair across the title/abstract boundary
    or pairs that occur apart are no phrase; phrases with rarer words are matched by position."""
    from papersys.search import text

    for title, abstract in papers.select("title", "abstract").iter_rows():  # the build's cached analysis
        for value in (title, abstract):
            assert text.analysed_words(value) == text.analyze(text.TEXT, value)
    assert text.common_pairs(text.analyze(text.TEXT, "to the")) == ["to_the"]  # one term
    assert text.common_pairs(text.analyze(text.TEXT, "walks to the quay")) == ["to_the"]  # + positions
    assert text.common_pairs(text.analyze(text.TEXT, "the quay")) == []  # positions only
    papers = {
        "2502.00001": ("Zorbly walks to the quay", "Then the zorbly sails home."),  # both phrases
        "2502.00002": ("The zorbly stops at the edge, going to", "the quay it never reaches."),  # across the two
        "2502.00003": ("Zorbly notes", "It walks to a hut; later it walks to the inn. The quay is far."),
        "2502.00004": ("Zorbly", "A zorbly walks, then to the quay it runs."),  # walks_to nowhere, to_the_quay
    }
    rows = [row(i, title=t, abstract=a, authors=["Ada X"]) for i, (t, a) in papers.items()]
    upsert(Layout(store.data_dir), frame(*rows))
    service.index(store, text_only=True)

    def found(query: str) -> set[str]:
        hits = service.search(store, query, QueryOptions(k=50, mode="keyword")).hits
        return {h.paper.id for h in hits} & set(papers)  # real papers hold "to the" too; zorbly ranks these first

    assert found('zorbly "to the"') == {"2502.00001", "2502.00003", "2502.00004"}
    assert found('zorbly "walks to the quay"') == {"2502.00001"}  # 3 has walks_to, to_the, the_quay apart
    assert found('zorbly "to the quay"') == {"2502.00001", "2502.00004"}  # 2: "to" ends the title
    assert found('zorbly "walks"') == {"2502.00001", "2502.00003", "2502.00004"}


def test_fusion_puts_a_paper_high_in_both_lists_first(library: Library, papers: pl.DataFrame) -> None:
    assert rrf([["a", "b", "c"], ["d", "b", "e"]], 60)[0][0] == "b"  # second twice beats first once
    fused = rrf([["a", "b"], ["b", "a"]], 60)
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62) and {i for i, _ in fused} == {"a", "b"}
    weighted = rrf([["a", "b"], ["b", "c"]], 10, weights=(3.0, 1.0))  # the first list weighs three times
    assert [i for i, _ in weighted] == ["b", "a", "c"] and weighted[1][1] == pytest.approx(3 / 11)
    assert [i for i, _ in rrf([["a", "b"], ["b", "a"]], 10, weights=(1.0, 2.0))] == ["b", "a"]
    paper = papers.row(7, named=True)
    keyword_top = library.search(paper["title"], k=3, mode="keyword").hits
    semantic_top = library.search(paper["title"], k=3, mode="semantic").hits
    assert keyword_top[0].paper.id == paper["id"] == semantic_top[0].paper.id
    hybrid = library.search(paper["title"], k=10)
    assert hybrid.mode == "hybrid" and hybrid.hits[0].paper.id == paper["id"]
    settings = library.config.search
    first_in_both = (settings.keyword_weight + 1) / (settings.rrf_k + 1)
    assert hybrid.hits[0].score == pytest.approx(first_in_both)
    scores = [h.score for h in hybrid.hits]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10


def test_filters_apply_in_every_mode(library: Library, papers: pl.DataFrame) -> None:
    since = date(2024, 6, 1)
    for mode in ("hybrid", "keyword", "semantic"):
        result = library.search("neural networks", k=10, mode=mode, categories=["cs.CL"], since=since)
        created = [h.paper.created for h in result.hits]
        assert result.hits and all("cs.CL" in h.paper.categories for h in result.hits), mode
        assert all(c is not None and c >= since for c in created), mode
    cat = library.search("language models cat:cs.CL", k=10, mode="keyword")
    assert len(cat.hits) == 10 and all("cs.CL" in h.paper.categories for h in cat.hits)
    flag = library.search("language models", k=10, mode="keyword", categories=["cs.CL"])
    assert [h.paper.id for h in cat.hits] == [h.paper.id for h in flag.hits]  # cat: is --category
    archive = library.search("proteins cat:q-bio", k=50, mode="keyword")
    assert archive.hits and all(any(c.startswith("q-bio.") for c in h.paper.categories) for h in archive.hits)


def test_a_title_edit_is_reflected_after_ingest(store: Config, papers: pl.DataFrame, tmp_path: Path) -> None:
    import json

    target = papers.row(20, named=True)
    new_title = "Zyxwvut spectroscopy of hypothetical quasicrystals"
    line = {
        "id": target["id"],
        "submitter": "A. Person",
        "authors": ", ".join(target["authors"]),
        "title": new_title,
        "comments": None,
        "journal-ref": None,
        "doi": None,
        "report-no": None,
        "categories": " ".join(target["categories"]),
        "license": None,
        "abstract": target["abstract"],
        "versions": [{"version": "v1", "created": "Mon, 1 Jan 2024 10:00:00 GMT"}],
        "update_date": "2030-01-01",
        "authors_parsed": [],
    }
    snapshot = tmp_path / "snapshot.jsonl"
    snapshot.write_text(json.dumps(line) + "\n")
    report = service.ingest_snapshot(store, snapshot)
    assert report.index is not None and "replaced" in report.index.summary()[0]
    hits = service.search(store, "zyxwvut quasicrystals", QueryOptions(k=3, mode="keyword")).hits
    assert hits and hits[0].paper.id == target["id"] and hits[0].paper.title == new_title
    old = service.search(store, f'"{target["title"]}"', QueryOptions(k=3, mode="keyword")).hits
    assert target["id"] not in [h.paper.id for h in old]


def test_a_deletion_removes_the_paper_from_both_indexes(store: Config, papers: pl.DataFrame) -> None:
    layout = Layout(store.data_dir)
    gone = papers.row(30, named=True)
    upsert(layout, frame(), deletions=pl.DataFrame({"id": [gone["id"]], "datestamp": [date(2030, 1, 1)]}))
    report = service.index(store)
    assert report.text is not None and report.text.removed == 1 and report.text.count == 199
    assert report.models[0].removed == 1
    for mode in ("hybrid", "keyword", "semantic"):
        hits = service.search(store, gone["title"], QueryOptions(k=10, mode=mode)).hits
        assert gone["id"] not in [h.paper.id for h in hits], mode
    again = service.index(store, text_only=True)
    assert again.text is not None and again.text.action == "current"


def test_new_papers_are_added_by_the_index_update(store: Config) -> None:
    layout = Layout(store.data_dir)
    synced = service.index(store, text_only=True)  # the copied store's files have new inodes: nothing differs
    assert synced.text is not None and (synced.text.added, synced.text.replaced, synced.text.removed) == (0, 0, 0)
    fresh = row("2502.00001", title="Qwertyuiop lattices", abstract="We count qwertyuiop points.", authors=["Ada X"])
    upsert(layout, frame(fresh))
    assert not service.search(store, "qwertyuiop", QueryOptions(mode="keyword")).hits  # not indexed yet
    status = service.status(store).text_index
    assert status["current"] is False and status["changed_years"] == [2025]
    report = service.index(store, text_only=True)
    assert report.text is not None and (report.text.added, report.text.count) == (1, 201)
    assert [h.paper.id for h in service.search(store, "qwertyuiop", QueryOptions(mode="keyword")).hits] == [
        "2502.00001"
    ]
    assert service.status(store).text_index["current"] is True
    manifest = read_text_manifest(layout)
    assert manifest is not None and manifest.count == 201


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('"unbalanced phrase', "unbalanced quote"),
        ("title:transformers", "unknown field 'title:'"),
        ("networks year:2024", "unknown field 'year:'"),
        ("cat:not_a_category", "not an arXiv category"),
        ("id:banana", "not an arXiv id"),
        ('author:""', "needs a value"),
        ('"" ???', "no searchable words"),
    ],
)
def test_bad_query_syntax_is_one_clear_error(library: Library, query: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        library.search(query, mode="keyword")
    assert "\n" not in str(caught.value)


def test_the_syntax_parses_as_documented() -> None:
    parsed = keyword.parse('graph "message passing" author:"Thomas Kipf" au:Welling cat:cs.LG id:1609.02907v4 nets')
    assert parsed.words == "graph nets" and parsed.phrases == ("message passing",)
    assert parsed.authors == ("Thomas Kipf", "Welling") and parsed.categories == ("cs.LG",)
    assert parsed.ids == ("1609.02907",) and parsed.lookup is None
    assert parsed.semantic_text == "message passing graph nets"
    assert keyword.parse("BERT: pre-training of deep transformers").words.startswith("BERT:")
    assert keyword.parse("see https://example.org/x for more").words == "see https://example.org/x for more"
    assert (
        keyword.parse("clem:todd: dialogue Distillation:Unifying").words == "clem:todd: dialogue Distillation:Unifying"
    )
    assert keyword.parse(" hep-th/9901001v2 ").lookup == "hep-th/9901001"


def test_a_mode_needs_its_index(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built / "data", tmp_path / "data", symlinks=True)
    config = make_config(tmp_path, ann_min_rows=0, tail_rows=0)
    assert service.search(config, "graph neural networks").mode == "semantic"  # no text index: meaning only
    with pytest.raises(SearchError, match="papersys index --text"):
        service.search(config, "graph neural networks", QueryOptions(mode="keyword"))
    with pytest.raises(UsageError, match="unknown search mode"):
        service.search(config, "x", QueryOptions(mode="fuzzy"))


@pytest.mark.slow
def test_a_kill_during_a_text_index_update_keeps_the_old_index_and_the_rerun_repairs(store: Config) -> None:
    import os
    import subprocess
    import sys

    layout = Layout(store.data_dir)
    config_file = store.data_dir.parent / "papersys.toml"
    config_file.write_text('data_dir = "data"\n[search]\nann_min_rows = 0\ntail_rows = 0\n')
    before = read_text_manifest(layout)
    assert before is not None
    fresh = [row(f"2503.{i:05d}", title=f"Plover migration study {i}", abstract="Birds fly.") for i in range(3)]
    upsert(layout, frame(*fresh))

    def papersys(*args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PAPERSYS_CRASH_AT": crash} if crash else dict(os.environ)
        command = [sys.executable, "-m", "papersys", "--config", str(config_file), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    for crash in ("text-index.before-commit:1", "text-index.after-commit:1", "atomic.before_replace:1"):
        assert papersys("index", "--text", crash=crash).returncode == 137, crash
        # whatever the kill interrupted, the index named by the manifest opens and answers
        hits = service.search(store, "neural networks", QueryOptions(k=3, mode="keyword")).hits
        assert len(hits) == 3, crash
    assert papersys("index", "--text", "--rebuild", crash="text-index.before-commit:1").returncode == 137
    assert len(service.search(store, "neural networks", QueryOptions(k=3, mode="keyword")).hits) == 3
    proc = papersys("index", "--text", "--json")
    assert proc.returncode == 0, proc.stderr
    after = read_text_manifest(layout)
    assert after is not None and after.count == before.count + 3 and after.generation == before.generation
    found = service.search(store, "plover migration", QueryOptions(k=10, mode="keyword")).hits
    assert sorted(h.paper.id for h in found) == [f"2503.{i:05d}" for i in range(3)]  # each once
    names = {p.name for p in layout.text_index_dir.iterdir()}
    assert names == {"manifest.json", f"g{after.generation:04d}", f"g{after.generation:04d}-hashes"}, names


def test_free_words_rank_by_re_ranking_the_pruned_term_union(
    indexed: Path, papers: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from papersys.search import text_index
    from papersys.search.filters import Filters
    from papersys.search.text_index import TextIndex

    texts = TextIndex.open(Layout(indexed / "data"))
    words_only = keyword.bm25_query(keyword.parse("graph neural networks"), Filters())
    assert words_only is not None and len(words_only.candidates) == 1  # two steps: union first
    for other in ('author:"Yoshua Bengio" networks', "networks --"):
        bm25 = keyword.bm25_query(keyword.parse(other), Filters.of(["cs"]))
        assert bm25 is not None and not bm25.candidates  # one step
    # "we" and "propose" are in most abstracts: candidates come from their titles first, then the full union
    common = keyword.bm25_query(keyword.parse("we propose graph networks"), Filters(), texts.share)
    assert common is not None and len(common.candidates) == 2
    assert texts.share("we") > keyword.COMMON_SHARE > texts.share("graph")
    # with a required clause every candidate query matches the same papers: no second one
    for constrained in ('author:"Yoshua Bengio" we propose', '"neural networks" we propose'):
        bm25 = keyword.bm25_query(keyword.parse(constrained), Filters(), texts.share)
        assert bm25 is not None and len(bm25.candidates) == 1
        assert texts.ranked(bm25, 10) == texts.top(bm25.query, 10)
    monkeypatch.setattr(text_index, "RERANK_DEPTH", 30)  # candidates well short of the 200 papers
    for arxiv_id, title in papers.select("id", "title").head(40).iter_rows():
        for share in (None, texts.share):
            bm25 = keyword.bm25_query(keyword.parse(title), Filters(), share)
            assert bm25 is not None
            two_steps, whole = texts.ranked(bm25, 10), texts.top(bm25.query, 10)
            assert two_steps[0][0] == whole[0][0] == arxiv_id, title  # a title finds its paper either way
            assert [i for i, _ in two_steps] == [i for i, _ in whole][: len(two_steps)]
    # a common word in few titles: the narrow step finds too few, the full union answers
    alone = keyword.bm25_query(keyword.parse("we"), Filters(), texts.share)
    assert alone is not None and len(alone.candidates) == 2
    assert len(texts.top(alone.candidates[0], 30)) < 30
    assert [i for i, _ in texts.ranked(alone, 10)] == [i for i, _ in texts.top(alone.query, 10)]
    assert len(texts.ranked(alone, 10)) == 10


def test_results_are_read_from_the_text_index_only_while_it_is_current(store: Config, papers: pl.DataFrame) -> None:
    from papersys.search.papers import load_papers
    from papersys.search.text_index import TextIndex

    layout = Layout(store.data_dir)
    assert service.index(store, text_only=True).text is not None  # the copy's new inodes: brought current
    texts = TextIndex.open(layout)
    ids = papers["id"].to_list()
    assert texts.current(layout)
    assert texts.papers(ids) == load_papers(layout, ids)  # every field of all 200 papers round-trips

    target = papers.row(40, named=True)  # edited in the store, the index not updated yet
    upsert(layout, frame(row(target["id"], title="Edited in the store only", abstract=target["abstract"])))
    assert not texts.current(layout)
    library = Library.open(store)
    assert library.paper(target["id"]).title == "Edited in the store only"  # the year files answer
    words = " ".join(target["title"].split()[:6])
    hits = library.search(words, k=10, mode="keyword").hits  # the stale index ranks by the old title...
    shown = [h.paper.title for h in hits if h.paper.id == target["id"]]
    assert shown == ["Edited in the store only"]  # ...and the result shows the stored one
