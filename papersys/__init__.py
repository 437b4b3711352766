"""papersys: a local-first daemon keeping arXiv metadata and paper embeddings current on one host."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("papersys")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
