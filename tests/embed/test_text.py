"""Text rendering from the metadata (template, prefix, list fields) and the stable text hash."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest
from support.builders import frame, row

from papersys.config import DEFAULT_TEMPLATE
from papersys.embed.text import hash_texts, render_texts, template_fields, text_hash
from papersys.errors import UsageError


def test_default_template_is_title_newline_abstract() -> None:
    meta = frame(row("2401.00001", title="A title", abstract="An abstract."))
    assert render_texts(meta, DEFAULT_TEMPLATE).to_list() == ["A title\nAn abstract."]


def test_prefix_list_fields_and_literal_braces_render_like_str_format() -> None:
    meta = frame(
        row("2401.00001", title="T", authors=["Ada Lovelace", "Alan Turing"], categories=["cs.LG", "stat.ML"]),
        row("2401.00002", title="U", authors=[], categories=["hep-th"]),
    )
    template = "{{{id}}} {title} [{categories}] by {authors} ({primary_category})"
    texts = render_texts(meta, template, prefix="passage: ").to_list()
    assert texts == [
        "passage: {2401.00001} T [cs.LG stat.ML] by Ada Lovelace, Alan Turing (cs.LG)",
        "passage: {2401.00002} U [hep-th] by  (hep-th)",
    ]
    assert template_fields(template) == ["id", "title", "categories", "authors", "primary_category"]


def test_null_fields_render_empty_and_unknown_fields_are_refused() -> None:
    meta = pl.DataFrame(
        {"id": ["2401.00001"], "title": [None], "abstract": ["x"]}, schema_overrides={"title": pl.String}
    )
    assert render_texts(meta, "{title}|{abstract}").to_list() == ["|x"]
    with pytest.raises(UsageError, match="doi"):
        render_texts(meta, "{doi}")


def test_hash_is_blake2b_of_the_exact_utf8_text_and_stable() -> None:
    text = "Schrödinger\nequation"
    # a literal: the hash must never change across processes, versions or machines
    assert text_hash(text) == hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
    assert text_hash("abc") == "cf4ab791c62b8d2b2109c90275287816"
    assert hash_texts(pl.Series(["abc", "abc ", text])).to_list() == [
        "cf4ab791c62b8d2b2109c90275287816",
        text_hash("abc "),
        text_hash(text),
    ]
    assert text_hash("abc") != text_hash("abc ")
