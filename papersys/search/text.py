"""The full-text index (tantivy, BM25): the one module importing tantivy.

One tantivy index per generation under ``data/index/text/g<G>/`` holds a document per paper: its id
(exact), title and abstract (words, lower-cased, ASCII-folded, English-stemmed), authors (names:
lower-cased and ASCII-folded, not stemmed; LaTeX accents undone), categories with their archives
(exact, lower-cased) and the first-version day (a range-filterable integer). Common word pairs:
every two consecutive analysed words of the title and of the abstract that are both common (in at least a
tenth of real arXiv papers: ``common_words.txt``) as one term (``to_the``, ``model_larg``), so that a quoted
phrase of common words is one posting list to read instead of two huge ones to intersect position by
position (``"to the"`` took 0.5 s at 3 M papers); a phrase with a rarer word is fast positionally.
Stored, for reading results without touching the metadata year files: the id, and the paper's display
fields as one compact JSON record (``search/papers.py``: ``paper_record``). Searches read papers from here
only while the index is current with every metadata year file (its manifest's signature), and from the
year files otherwise.

The analyzers below are registered on every open: tantivy records only their names in the index, so
the same objects tokenize documents and queries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

import tantivy

from papersys.errors import StoreError

# bump when the schema, an analyzer or common_words.txt changes: the next update rebuilds (2: stored papers,
# 3: common word pairs)
SCHEMA_VERSION = 3
TEXT, NAMES, EXACT, CONTENT, PAIR_TOKENS = "paper_text", "names", "exact", "content_words", "pair_tokens"
TITLE, ABSTRACT, AUTHORS, CATS, ID, CREATED = "title", "abstract", "authors", "cats", "id", "created"
PAIRS = "common_pairs"
PAPER = "paper"
EPOCH = date(1970, 1, 1)
WRITER_HEAP = 256_000_000  # bytes of indexing buffer, split among the writer's threads
MAX_TERM_CHARS = 40

# LaTeX accent commands in author names as arXiv stores them: M{\"u}ller, Schr\"odinger, \'Etienne
_LATEX_ACCENT = re.compile(r"""\\[`'^"~=.uvHtcdbk]\s*\{?([A-Za-z])\}?""")
_BRACES = re.compile(r"[{}]")


def _analyzer(tokenizer: Any, *filters: Any) -> Any:
    builder = tantivy.TextAnalyzerBuilder(tokenizer)
    for step in filters:
        builder = builder.filter(step)
    return builder.build()


def _analyzers() -> dict[str, Any]:
    f = tantivy.Filter
    folded = (f.remove_long(MAX_TERM_CHARS), f.lowercase(), f.ascii_fold())
    return {
        TEXT: _analyzer(tantivy.Tokenizer.simple(), *folded, f.stemmer("english")),
        NAMES: _analyzer(tantivy.Tokenizer.simple(), *folded),
        EXACT: _analyzer(tantivy.Tokenizer.raw(), f.lowercase()),
        PAIR_TOKENS: _analyzer(tantivy.Tokenizer.whitespace()),  # the pairs arrive analysed: common_pairs()
        # query side only: the free words without English stop words, which match nearly every paper, add
        # nothing to BM25 and cost the most (the index keeps them, so quoted phrases still hold them)
        CONTENT: _analyzer(tantivy.Tokenizer.simple(), *folded, f.stopword("english"), f.stemmer("english")),
    }


ANALYZERS = _analyzers()


def library_version() -> str:
    from importlib.metadata import version

    return f"tantivy {version('tantivy')}"


def schema() -> Any:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field(ID, stored=True, tokenizer_name=EXACT, index_option="basic")
    builder.add_text_field(TITLE, tokenizer_name=TEXT)
    builder.add_text_field(ABSTRACT, tokenizer_name=TEXT)
    builder.add_text_field(AUTHORS, tokenizer_name=NAMES)
    builder.add_text_field(CATS, tokenizer_name=EXACT, index_option="basic")
    builder.add_text_field(PAIRS, tokenizer_name=PAIR_TOKENS, index_option="freq")  # no positions: see phrases
    builder.add_integer_field(CREATED, indexed=True, fast=True)
    builder.add_bytes_field(PAPER, stored=True)
    return builder.build()


SCHEMA = schema()


def analyze(analyzer: str, text: str) -> list[str]:
    """``text`` as the index sees it in a field tokenized by ``analyzer``."""
    return list(ANALYZERS[analyzer].analyze(text))


COMMON_WORDS = frozenset(
    line
    for line in (Path(__file__).with_name("common_words.txt").read_text(encoding="utf-8").splitlines())
    if line and not line.startswith("#")
)
_CHUNKS: dict[str, tuple[str, ...]] = {}  # a whitespace-free chunk of text → its analysed words
_CHUNKS_MAX = 1 << 20


def analysed_words(value: str) -> list[str]:
    """The same words as ``analyze(TEXT, value)``, cheaper for a whole corpus: the tokenizer never joins
    across whitespace, so each whitespace-separated chunk is analysed on its own, once, and looked up after
    (a 3 M-paper build analyses every title and abstract for its pairs)."""
    words: list[str] = []
    for chunk in value.split():
        found = _CHUNKS.get(chunk)
        if found is None:
            if len(_CHUNKS) >= _CHUNKS_MAX:
                _CHUNKS.clear()
            found = _CHUNKS[chunk] = tuple(ANALYZERS[TEXT].analyze(chunk))
        words.extend(found)
    return words


def common_pairs(words: Sequence[str]) -> list[str]:
    """The pair terms of consecutive analysed words that are both common (the analyzers split on ``_``, so a
    pair is unambiguous)."""
    common = COMMON_WORDS
    return [f"{a}_{b}" for a, b in pairwise(words) if a in common and b in common]


def plain_name(name: str) -> str:
    """An author name without LaTeX accent commands or braces (ASCII folding does the rest)."""
    return _BRACES.sub("", _LATEX_ACCENT.sub(r"\1", name))


def category_terms(categories: Iterable[str]) -> list[str]:
    """A paper's category terms: each category and its archive (``cs.LG`` → ``cs.lg``, ``cs``)."""
    terms: dict[str, None] = {}
    for category in categories:
        lowered = category.strip().lower()
        if lowered:
            terms[lowered] = None
            terms[lowered.split(".", 1)[0]] = None
    return list(terms)


@dataclass(frozen=True)
class TextDoc:
    id: str
    title: str
    abstract: str
    authors: Sequence[str]
    categories: Sequence[str]
    created: date | None
    paper: bytes = b""  # the stored display record

    def to_document(self) -> Any:
        doc = tantivy.Document()
        doc.add_text(ID, self.id)
        doc.add_text(TITLE, self.title)
        doc.add_text(ABSTRACT, self.abstract)
        for value in (self.title, self.abstract):  # no pair across the two
            pairs = common_pairs(analysed_words(value))
            if pairs:
                doc.add_text(PAIRS, " ".join(pairs))
        for author in self.authors:
            doc.add_text(AUTHORS, plain_name(author))
        for term in category_terms(self.categories):
            doc.add_text(CATS, term)
        if self.created is not None:
            doc.add_integer(CREATED, (self.created - EPOCH).days)
        if self.paper:
            doc.add_bytes(PAPER, self.paper)
        return doc


def create(path: Path) -> Any:
    """A new, empty index at ``path`` (a directory that must not hold one)."""
    path.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(SCHEMA, path=str(path), reuse=False)
    _register(index)
    return index


def open_index(path: Path) -> Any:
    """The index at ``path``; StoreError (naming the repair) when it is missing or unreadable."""
    try:
        if not tantivy.Index.exists(str(path)):
            raise StoreError(path, "holds no full-text index", "run `papersys index --text --rebuild`")
        index = tantivy.Index.open(str(path))
    except StoreError:
        raise
    except Exception as exc:  # tantivy raises ValueError with its own text
        raise StoreError(
            path, f"cannot open the full-text index ({exc})", "run `papersys index --text --rebuild`"
        ) from exc
    _register(index)
    return index


def _register(index: Any) -> None:
    for name, analyzer in ANALYZERS.items():
        index.register_tokenizer(name, analyzer)


@contextmanager
def writing(index: Any, threads: int) -> Iterator[Any]:
    """A writer for the block, which commits what it wants kept; on an exception its uncommitted changes are
    rolled back. Leaving the block waits for tantivy's segment merges and releases the writer's lock."""
    writer = index.writer(heap_size=WRITER_HEAP, num_threads=max(1, threads))
    try:
        yield writer
    except BaseException:
        writer.rollback()
        raise
    writer.wait_merging_threads()


def delete(writer: Any, ids: Iterable[str]) -> int:
    count = 0
    for arxiv_id in ids:
        writer.delete_documents_by_term(ID, _exact_term(ID, arxiv_id))
        count += 1
    return count


# queries ----------------------------------------------------------------------------------------------------
Occur = tantivy.Occur
Q = tantivy.Query


def _exact_term(field: str, value: str) -> str:
    """A term of an exact field as the index holds it (the exact analyzer lower-cases: old-style ids and
    categories keep their case in the store)."""
    return value.lower() if field in (ID, CATS) else value


def term(field: str, value: str) -> Any:
    return Q.term_query(SCHEMA, field, _exact_term(field, value))


def any_term(field: str, values: Sequence[str]) -> Any:
    return Q.term_set_query(SCHEMA, field, [_exact_term(field, v) for v in values])


def phrase(field: str, words: Sequence[str]) -> Any:
    return Q.phrase_query(SCHEMA, field, list(words)) if len(words) > 1 else term(field, words[0])


def day_range(since: date | None, until: date | None) -> Any:
    return Q.range_query(
        SCHEMA,
        CREATED,
        tantivy.FieldType.Integer,
        (since - EPOCH).days if since else -(2**62),
        (until - EPOCH).days if until else 2**62,
    )


def boolean(clauses: Sequence[tuple[Any, Any]]) -> Any:
    return Q.boolean_query(list(clauses))


def boost(query: Any, factor: float) -> Any:
    return Q.boost_query(query, factor)


def everything() -> Any:
    return Q.all_query()


def constant(query: Any) -> Any:
    """``query`` as a filter: matches the same documents, adds nothing to the score."""
    return Q.const_score_query(query, 0.0)


def top(searcher: Any, query: Any, limit: int) -> list[tuple[str, float]]:
    """The ids and BM25 scores of the best ``limit`` documents matching ``query``."""
    if limit <= 0:
        return []
    found = searcher.search(query, limit, count=False)
    return [(str(searcher.doc(address).get_first(ID)), float(score)) for score, address in found.hits]


def stored_papers(searcher: Any, ids: Sequence[str]) -> dict[str, bytes]:
    """The stored display records of the papers among ``ids`` that the index holds, by id."""
    if not ids:
        return {}
    found = searcher.search(any_term(ID, ids), len(ids), count=False)
    records = {}
    for _, address in found.hits:
        doc = searcher.doc(address)
        raw = doc.get_first(PAPER)
        if raw is not None:
            records[str(doc.get_first(ID))] = bytes(raw)
    return records


def count(searcher: Any) -> int:
    return int(searcher.num_docs)
