"""The query syntax of keyword and hybrid search, and its translation into a BM25 query.

A query is free words plus, anywhere in it:

- ``"a quoted phrase"``: the words in this order, in the title, the abstract or the authors;
- ``author:Name`` or ``author:"First Last"`` (also ``au:``): papers with that author;
- ``cat:cs.LG`` (an archive like ``cat:cs`` too): the same as ``--category``, any of;
- ``id:2401.12345`` (also ``arxiv:``): that paper.

A whole query that is one arXiv id (``2401.12345v2``, ``hep-th/9901001``) or an arxiv.org URL is a lookup:
that paper comes first. A word and colon that look like a search field but are none of these (``title:``,
``abstract:``, ``year:``…) are an error that names the known fields; any other ``word:word`` (real titles
hold ``clem:todd``) and a colon followed by a space are plain text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from papersys.errors import UsageError
from papersys.search import text
from papersys.search.filters import Filters, check_category
from papersys.search.papers import paper_id

FIELDS = {"author": "author", "au": "author", "cat": "cat", "id": "id", "arxiv": "id"}
# names people type as search fields (arXiv's own search, Lucene, Google Scholar) that papersys does not have:
# an error naming the known fields. Any other "word:word" is text: real titles hold "clem:todd" and
# "Distillation:Unifying".
_NOT_FIELDS = """title ti abstract abs all authors category categories year date doi journal comments comment
license primary subject tag sort from since until before after intitle inauthor"""
NOT_FIELDS = frozenset(_NOT_FIELDS.split())
TITLE_BOOST = 2.0  # a query word in the title counts twice one in the abstract (relevance bench: devdoc)
ID_BOOST = 50.0  # an arXiv id among the free words puts that paper first
# the free words in order, as a whole: in the title (a remembered title) or in the authors (a name typed
# bare, "Yoshua Bengio") they outrank papers that only hold the words apart
TITLE_PHRASE_BOOST = 3.0
AUTHOR_PHRASE_BOOST = 8.0
# free words alone are answered in two steps: the plain union of their (boosted) term queries, which
# tantivy evaluates with block-max WAND (skipping documents that cannot reach the top), gives this many
# candidates; the whole query, phrase bonuses included, then ranks only those
RERANK_DEPTH = 200
# gathering those candidates, a word in more than this share of the abstracts is looked up in the titles (and
# authors) only: its abstract postings are millions of documents to score (at 3 M papers, 30-90 ms a query)
# for a contribution its low IDF keeps small; the whole query still scores it. When the narrow step finds
# fewer than RERANK_DEPTH papers, the full union gathers them (text_search bench: devdoc/search.md)
COMMON_SHARE = 0.2
_TOKEN = re.compile(r'"(?P<phrase>[^"]*)"|(?P<field>[A-Za-z]+):(?P<value>"[^"]*"|\S+)|(?P<word>\S+)')


@dataclass(frozen=True)
class KeywordQuery:
    words: str = ""  # the free text: what BM25 ranks by and the semantic side embeds
    phrases: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    lookup: str | None = None  # the whole query named this paper

    @property
    def constrained(self) -> bool:
        """Whether some clause must hold (beyond the filters) for a paper to match."""
        return bool(self.phrases or self.authors or self.ids)

    @property
    def semantic_text(self) -> str:
        """What the semantic side of a hybrid query embeds: the free words and the phrases' words."""
        return " ".join([*self.phrases, self.words]).strip()


def parse(raw: str) -> KeywordQuery:
    """``raw`` checked and split into its parts; UsageError naming the first problem."""
    query = raw.strip()
    if not query:
        raise UsageError("the query is empty")
    lookup = lookup_id(query)
    if lookup is not None:
        return KeywordQuery(lookup=lookup)
    if query.count('"') % 2:
        raise UsageError(f"the query has an unbalanced quote: {raw!r}")
    words: list[str] = []
    parts: dict[str, list[str]] = {"phrase": [], "author": [], "cat": [], "id": []}
    for match in _TOKEN.finditer(query):
        if match["phrase"] is not None:
            if match["phrase"].strip():
                parts["phrase"].append(match["phrase"].strip())
        elif match["field"] is not None:
            _field(match["field"], match["value"], parts, words)
        else:
            words.append(match["word"])
    return KeywordQuery(
        words=" ".join(words),
        phrases=tuple(parts["phrase"]),
        authors=tuple(parts["author"]),
        categories=tuple(dict.fromkeys(parts["cat"])),
        ids=tuple(dict.fromkeys(parts["id"])),
    )


def lookup_id(query: str) -> str | None:
    """The paper id when the whole query is one arXiv id or arxiv.org URL, else None."""
    query = query.strip()
    if not query or " " in query:
        return None
    try:
        return paper_id(query)
    except ValueError:
        return None


def _field(name: str, value: str, parts: dict[str, list[str]], words: list[str]) -> None:
    kind = FIELDS.get(name.lower())
    if kind is None:
        if name.lower() in NOT_FIELDS:
            known = ", ".join(f"{f}:" for f in FIELDS)
            raise UsageError(f"unknown field {name + ':'!r} in the query (known: {known}); quote it to search the text")
        words.append(f"{name}:{value}")  # text with a colon in it, or a URL
        return
    value = value[1:-1].strip() if value.startswith('"') else value
    if not value:
        raise UsageError(f"{name}: needs a value")
    if kind == "cat":
        check_category(value)
    elif kind == "id":
        try:
            value = paper_id(value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    parts[kind].append(value)


def with_categories(filters: Filters, query: KeywordQuery) -> Filters:
    """The filters with the query's ``cat:`` clauses added (any of, like repeated ``--category``)."""
    if not query.categories:
        return filters
    return Filters.of([*filters.categories, *query.categories], filters.since, filters.until)


# the BM25 query -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bm25:
    """How to rank: ``query`` over the index, or, when ``candidates`` are set, ``query`` over the best
    ``RERANK_DEPTH`` matches of the first candidate query that finds that many (or of the last): plain
    unions of term queries, fast to prune, the narrowest first."""

    query: Any
    candidates: tuple[Any, ...] = ()


Share = Callable[[str], float]  # the share of the documents whose abstract holds an analysed word


def bm25_query(query: KeywordQuery, filters: Filters, share: Share | None = None) -> Bm25 | None:
    """The tantivy query ranking papers by ``query`` among those ``filters`` admit; None when nothing can
    match (the words analyse to no terms and there is no other clause). With ``share``, candidates are
    first gathered without the abstract postings of common words."""
    required: list[tuple[Any, Any]] = [(text.Occur.Must, _phrase_anywhere(p)) for p in query.phrases]
    required += [(text.Occur.Must, _author(name)) for name in query.authors]
    if query.ids:
        required.append((text.Occur.Must, text.any_term(text.ID, list(query.ids))))
    limits = [(text.Occur.Must, f) for f in filter_clauses(filters)]
    terms, bonuses, narrow = _word_clauses(query.words, share)
    if not terms and not bonuses:
        return Bm25(text.boolean(required + limits)) if required else None

    def ranked_by(words: list[Any]) -> Any:
        should = [(text.Occur.Should, q) for q in words]
        if required:  # other clauses decide what matches; the words rank
            return text.boolean(required + should + limits)
        if limits:  # a paper must hold one of the words and pass the filters
            return text.boolean([(text.Occur.Must, text.boolean(should)), *limits])
        return text.boolean(should)  # a plain union: block-max WAND prunes it

    whole = ranked_by(terms + bonuses)
    if narrow:  # the same papers match (a required clause) or fewer (words alone): then the full union
        return Bm25(whole, candidates=(ranked_by(narrow),) if required else (ranked_by(narrow), ranked_by(terms)))
    if bonuses and not required and not limits:
        return Bm25(whole, candidates=(ranked_by(terms),))
    return Bm25(whole)


def as_name(query: KeywordQuery) -> tuple[KeywordQuery, Any] | None:
    """When the free words alone could be an author's name (2-4 name words, nothing else in the query): the
    query as ``author:"<words>"`` and the phrase query that tells whether some paper has that author."""
    if query.constrained or query.categories or query.lookup:
        return None
    names = text.analyze(text.NAMES, text.plain_name(query.words))
    if not 1 < len(names) <= 4:
        return None
    return KeywordQuery(authors=(query.words,)), text.phrase(text.AUTHORS, names)


def constraint_query(query: KeywordQuery, filters: Filters) -> Any:
    """What a paper must satisfy, without the free words: checks candidates from the vector side."""
    clauses = [(text.Occur.Must, _phrase_anywhere(p)) for p in query.phrases]
    clauses += [(text.Occur.Must, _author(name)) for name in query.authors]
    if query.ids:
        clauses.append((text.Occur.Must, text.any_term(text.ID, list(query.ids))))
    clauses += [(text.Occur.Must, f) for f in filter_clauses(filters)]
    return text.boolean(clauses) if clauses else text.everything()


def filter_clauses(filters: Filters) -> list[Any]:
    found = []
    if filters.categories:
        # a paper's terms hold each category and its archive, so "cs" and "cs.LG" are both one term
        found.append(text.constant(text.any_term(text.CATS, list(filters.categories))))
    if filters.since or filters.until:
        found.append(text.constant(text.day_range(filters.since, filters.until)))
    return found


def _word_clauses(words: str, share: Share | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """The free words as term queries (title boosted, abstract, author names, arXiv ids boosted), their
    phrase bonuses (the words in order, as a whole, in the title or the authors: a remembered title, a name
    typed bare), and, when ``share`` finds common words, the term queries without their abstract postings
    (else empty)."""
    terms: list[Any] = []
    common: set[int] = set()  # positions in terms of the abstract terms of common words
    title_words = text.analyze(text.TEXT, words)
    content = text.analyze(text.CONTENT, words)
    names = text.analyze(text.NAMES, text.plain_name(words))
    for token in dict.fromkeys(content or title_words):  # only stop words: keep them
        terms.append(text.boost(text.term(text.TITLE, token), TITLE_BOOST))
        if share is not None and share(token) > COMMON_SHARE:
            common.add(len(terms))
        terms.append(text.term(text.ABSTRACT, token))
    for token in dict.fromkeys(names):
        terms.append(text.term(text.AUTHORS, token))
    for word in words.split():
        try:
            terms.append(text.boost(text.term(text.ID, paper_id(word)), ID_BOOST))
        except ValueError:
            continue
    narrow = [q for i, q in enumerate(terms) if i not in common] if common else []
    bonuses: list[Any] = []
    if len(title_words) > 1 and len(content) > 1:  # a phrase of stop words only would scan every title
        bonuses.append(text.boost(text.phrase(text.TITLE, title_words), TITLE_PHRASE_BOOST))
    if 1 < len(names) <= 6:
        bonuses.append(text.boost(text.phrase(text.AUTHORS, names), AUTHOR_PHRASE_BOOST))
    return terms, bonuses, narrow


def _phrase_anywhere(phrase_text: str) -> Any:
    """The words of ``phrase_text`` in this order in the title, the abstract or the authors. Two common words
    are one pair term; a longer phrase needs its common pairs (the rarest leads tantivy's intersection) and
    then the positions of the whole phrase in the title or abstract, checked only where every pair occurs."""
    options = []
    words = text.analyze(text.TEXT, phrase_text)
    if len(words) == 1:
        options += [(text.Occur.Should, text.term(field, words[0])) for field in (text.TITLE, text.ABSTRACT)]
    elif words:
        pairs = [(text.Occur.Must, text.term(text.PAIRS, p)) for p in dict.fromkeys(text.common_pairs(words))]
        if len(words) == 2 and pairs:
            options.append((text.Occur.Should, pairs[0][1]))
        else:
            whole = [(text.Occur.Should, text.phrase(field, words)) for field in (text.TITLE, text.ABSTRACT)]
            options.append((text.Occur.Should, text.boolean([*pairs, (text.Occur.Must, text.boolean(whole))])))
    names = text.analyze(text.NAMES, text.plain_name(phrase_text))
    if names:
        options.append((text.Occur.Should, text.phrase(text.AUTHORS, names)))
    if not options:
        raise UsageError(f'the phrase "{phrase_text}" has no searchable words')
    return text.boolean(options)


def _author(name: str) -> Any:
    words = text.analyze(text.NAMES, text.plain_name(name))
    if not words:
        raise UsageError(f"author:{name!r} has no searchable name")
    return text.phrase(text.AUTHORS, words)
