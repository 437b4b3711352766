"""papersys: a local-first daemon keeping arXiv metadata and paper embeddings current on one host.

``from papersys import Library`` is the Python API (loaded on first use, so ``import papersys`` stays cheap).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("papersys")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from papersys.errors import PapersysError, SearchError, UsageError
    from papersys.library import Library
    from papersys.search.results import Hit, Paper, SearchResult

__all__ = ["Hit", "Library", "Paper", "PapersysError", "SearchError", "SearchResult", "UsageError"]
_LAZY = {
    "Library": "papersys.library",
    "Paper": "papersys.search.results",
    "Hit": "papersys.search.results",
    "SearchResult": "papersys.search.results",
    "PapersysError": "papersys.errors",
    "SearchError": "papersys.errors",
    "UsageError": "papersys.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'papersys' has no attribute {name!r}")
