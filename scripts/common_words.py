"""Regenerate ``papersys/search/common_words.txt``: the analysed words (English-stemmed, as the full-text
index's title and abstract fields hold them) that occur in at least a tenth of the 2,905 real arXiv papers of
the shared fixtures (title or abstract). The full-text index keeps word pairs of two such words as terms of
their own, so quoted phrases of common words are one posting list instead of a positional intersection of
two huge ones (devdoc/search.md). Changing the list changes the index: bump ``text.SCHEMA_VERSION`` with it.

    uv run python scripts/common_words.py
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl

from papersys.search import text

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT.parent / "shared" / "fixtures" / "arxiv-real-thirdparty" / "legacy"
SHARE = 0.10


def main() -> None:
    papers = pl.read_parquet(LEGACY / "PaperDigestAction__predictions.parquet", columns=["title", "abstract"])
    counts: Counter[str] = Counter()
    for title, abstract in papers.iter_rows():
        counts.update(set(text.analyze(text.TEXT, f"{title} {abstract}")))
    common = sorted(word for word, n in counts.items() if n >= SHARE * papers.height)
    header = (
        f"# analysed words in at least {SHARE:.0%} of {papers.height:,} real arXiv papers "
        "(scripts/common_words.py); a change needs a text.SCHEMA_VERSION bump\n"
    )
    out = ROOT / "papersys" / "search" / "common_words.txt"
    out.write_text(header + "\n".join(common) + "\n", encoding="utf-8")
    print(f"{len(common)} words -> {out}")


if __name__ == "__main__":
    main()
