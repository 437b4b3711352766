"""Every path of the data directory, in one place (DESIGN §2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

_YEAR_FILE = re.compile(r"^(\d{4})\.parquet$")  # metadata/<year>.parquet, embeddings/<alias>/<year>.parquet
_PART_FILE = re.compile(r"^(\d{4})-(\d{6})\.parquet$")  # embeddings/<alias>/pending/<year>-<seq>.parquet


def _year_name(year: int) -> str:
    return f"{year}.parquet"


def _part_name(year: int, seq: int) -> str:
    return f"{year}-{seq:06d}.parquet"


class PendingPart(NamedTuple):
    """A chunk part file of one model-year; sorting gives write order (year, then sequence number)."""

    year: int
    seq: int
    path: Path


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def top_dirs(self) -> tuple[Path, ...]:
        """The directories papersys keeps under the root (in the order pre-flight checks look at them)."""
        return (self.metadata_dir, self.embeddings_root, self.state_dir, self.locks_dir)

    # metadata -------------------------------------------------------------------------------------------
    @property
    def metadata_dir(self) -> Path:
        return self.root / "metadata"

    def metadata_file(self, year: int) -> Path:
        return self.metadata_dir / _year_name(year)

    def metadata_years(self) -> list[int]:
        return _years_in(self.metadata_dir)

    # embeddings -----------------------------------------------------------------------------------------
    @property
    def embeddings_root(self) -> Path:
        return self.root / "embeddings"

    def embeddings_dir(self, alias: str) -> Path:
        return self.embeddings_root / alias

    def embedding_file(self, alias: str, year: int) -> Path:
        return self.embeddings_dir(alias) / _year_name(year)

    def embedding_years(self, alias: str) -> list[int]:
        return _years_in(self.embeddings_dir(alias))

    def manifest_file(self, alias: str) -> Path:
        return self.embeddings_dir(alias) / "manifest.json"

    def embedding_pending_dir(self, alias: str) -> Path:
        """Chunk part files (``<year>-<seq>.parquet``) not yet compacted into the year files."""
        return self.embeddings_dir(alias) / "pending"

    def embedding_part_file(self, alias: str, year: int, seq: int) -> Path:
        return self.embedding_pending_dir(alias) / _part_name(year, seq)

    def embedding_parts(self, alias: str, year: int | None = None) -> list[PendingPart]:
        """The part files of ``year`` (or of every year), oldest first."""
        directory = self.embedding_pending_dir(alias)
        if not directory.is_dir():
            return []
        found = []
        for entry in directory.iterdir():
            match = _PART_FILE.match(entry.name)
            if match and (year is None or int(match.group(1)) == year):
                found.append(PendingPart(int(match.group(1)), int(match.group(2)), entry))
        return sorted(found)

    def coverage_cache(self, alias: str) -> Path:
        """Per-year coverage counts of one model, keyed by a signature of their input files."""
        return self.state_dir / "coverage" / f"{alias}.json"

    def worker_log(self, alias: str) -> Path:
        """stdout/stderr of the spawned embedding worker of one model (rewritten per run)."""
        return self.state_dir / "logs" / f"embed-{alias}.log"

    # state ----------------------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def harvest_state(self) -> Path:
        return self.state_dir / "harvest.json"

    @property
    def jobs_log(self) -> Path:
        return self.state_dir / "jobs.jsonl"

    @property
    def daemon_state(self) -> Path:
        return self.state_dir / "daemon.json"

    @property
    def deletions_file(self) -> Path:
        """Tombstones of records arXiv reported deleted (id, datestamp)."""
        return self.state_dir / "deleted.parquet"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "spool"

    @property
    def snapshot_checkpoint(self) -> Path:
        """Progress of a resumable ``ingest --snapshot`` load (deleted once it has merged)."""
        return self.state_dir / "snapshot.json"

    @property
    def snapshot_spool_dir(self) -> Path:
        """The spool of a snapshot load, apart from the harvest's so neither clears the other's."""
        return self.state_dir / "snapshot-spool"

    # locks ----------------------------------------------------------------------------------------------
    @property
    def locks_dir(self) -> Path:
        return self.root / ".locks"

    def lock_file(self, name: str) -> Path:
        return self.locks_dir / f"{name}.lock"

    def lock_info_file(self, name: str) -> Path:
        return self.locks_dir / f"{name}.holder.json"


def _years_in(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    years = []
    for entry in directory.iterdir():
        match = _YEAR_FILE.match(entry.name)
        if match:
            years.append(int(match.group(1)))
    return sorted(years)
