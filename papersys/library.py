"""The Python API: ``Library.open(data_dir_or_config)`` with ``search``, ``similar`` and ``paper``.

It calls the same service functions as the CLI and keeps the opened indexes and query encoders between
calls, so the second query of a session costs milliseconds, not model loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from papersys import service
from papersys.config import Config, config_from_mapping, load_config
from papersys.search.query import QueryOptions, Searcher
from papersys.search.results import Paper, SearchResult


class Library:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._searcher = Searcher(config)

    @classmethod
    def open(cls, source: str | Path | Config | None = None) -> Library:
        """A library over a data directory, a TOML config file, a ``Config``, or (None) the default config
        (``PAPERSYS_CONFIG`` or the embedded defaults)."""
        if isinstance(source, Config):
            return cls(source)
        if source is None:
            return cls(load_config(None))
        path = Path(source)
        if path.is_file() or path.suffix == ".toml":
            return cls(load_config(str(path)))
        return cls(config_from_mapping({"data_dir": str(path.resolve())}, base_dir=Path.cwd()))

    def search(
        self,
        text: str,
        *,
        k: int = 10,
        categories: Sequence[str] = (),
        since: date | str | None = None,
        until: date | str | None = None,
        model: str | None = None,
        mode: str | None = None,
    ) -> SearchResult:
        """The k papers that best answer ``text``; ``mode`` hybrid | semantic | keyword (default: hybrid when
        both indexes exist). See ``papersys.service.search``."""
        options = QueryOptions(k, categories, since, until, model, mode)
        return service.search(self.config, text, options, searcher=self._searcher)

    def similar(
        self,
        paper_id: str,
        *,
        k: int = 10,
        categories: Sequence[str] = (),
        since: date | str | None = None,
        until: date | str | None = None,
        model: str | None = None,
    ) -> SearchResult:
        """The k papers nearest to the stored paper ``paper_id`` (itself excluded)."""
        options = QueryOptions(k, categories, since, until, model)
        return service.similar(self.config, paper_id, options, searcher=self._searcher)

    def paper(self, paper_id: str) -> Paper:
        """One stored paper by id (versioned and old-style ids accepted); SearchError when unknown."""
        return service.paper(self.config, paper_id, searcher=self._searcher)
