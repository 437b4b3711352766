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

    def text_hash_dir(self, alias: str) -> Path:
        """Remembered text hashes of one model's papers, a file per year (a cache: safe to delete)."""
        return self.state_dir / "hashes" / alias

    def text_hash_cache(self, alias: str, year: int) -> Path:
        return self.text_hash_dir(alias) / f"{year}.parquet"

    def worker_log(self, alias: str) -> Path:
        """stdout/stderr of the spawned embedding worker of one model (rewritten per run)."""
        return self.state_dir / "logs" / f"embed-{alias}.log"

    # distilled models: `papersys model distill` writes one directory per alias ---------------------------
    @property
    def models_root(self) -> Path:
        return self.root / "models"

    def model_dir(self, alias: str) -> Path:
        """A static (model2vec) model: its own files plus ``manifest.json`` (how it was made)."""
        return self.models_root / alias

    def model_manifest(self, alias: str) -> Path:
        return self.model_dir(alias) / "manifest.json"

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
    def audit_state(self) -> Path:
        """The result of the last ``papersys audit`` (what it compared, the gaps it found and repaired)."""
        return self.state_dir / "audit.json"

    @property
    def feed_state(self) -> Path:
        """Per feed URL: ETag / Last-Modified of the last answer, when fetched, its newest item, replacements."""
        return self.state_dir / "feeds.json"

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

    # search indexes: derived from the store, rebuilt by `papersys index --rebuild` ---------------------------
    # A vector index generation <g> is a set of files g<g>-<column>.bin (search/rows.py), ANN indexes
    # g<g>-ivf-<seq>.faiss and dead-row lists g<g>-dead-<seq>.npy; the manifest names the ones in use.
    INDEX_COLUMNS = ("ids", "year", "stamp", "created", "ncat", "cats", "vectors")

    @property
    def index_root(self) -> Path:
        return self.root / "index"

    def vector_index_dir(self, alias: str) -> Path:
        return self.index_root / alias

    def vector_index_manifest(self, alias: str) -> Path:
        return self.vector_index_dir(alias) / "manifest.json"

    def vector_index_rows(self, alias: str, generation: int) -> dict[str, Path]:
        """The append-only column files of one index generation, by column."""
        base = self.vector_index_dir(alias)
        return {column: base / f"g{generation:04d}-{column}.bin" for column in self.INDEX_COLUMNS}

    def vector_index_ann(self, alias: str, generation: int, seq: int) -> Path:
        return self.vector_index_dir(alias) / f"g{generation:04d}-ivf-{seq:04d}.faiss"

    def vector_index_dead(self, alias: str, generation: int, seq: int) -> Path:
        return self.vector_index_dir(alias) / f"g{generation:04d}-dead-{seq:04d}.npy"

    def query_encoder_dir(self, alias: str) -> Path:
        """The query encoder exported for fast cold queries (ONNX model + tokenizer), per model."""
        return self.vector_index_dir(alias) / "query-encoder"

    # The full-text index: generation <g> is a tantivy directory g<g>/ and, per metadata year, the content
    # hashes of the papers it holds (g<g>-hashes/<year>.parquet); the manifest names the generation.
    @property
    def text_index_dir(self) -> Path:
        return self.index_root / "text"

    @property
    def text_index_manifest(self) -> Path:
        return self.text_index_dir / "manifest.json"

    def text_index_generation(self, generation: int) -> Path:
        return self.text_index_dir / f"g{generation:04d}"

    def text_index_hashes(self, generation: int, year: int) -> Path:
        return self.text_index_dir / f"g{generation:04d}-hashes" / f"{year}.parquet"

    # spools: parsed records waiting for their merge (ingest/spool.py) ------------------------------------
    # A spool directory holds parts <partition>/<seq>.parquet: a partition per paper year, and one for
    # deletions. The directory is the data dir's (below) or, in a dry run, a temporary one.
    SPOOL_DELETIONS = "deletions"

    def harvest_spool_dir(self, set_key: str) -> Path:
        """The spool of the window being harvested for one set (``:`` in a set key becomes ``_``)."""
        return self.spool_dir / f"oai-{set_key.replace(':', '_')}"

    @staticmethod
    def spool_part(spool: Path, partition: str, seq: int) -> Path:
        """Part ``seq`` of one partition (a year, or ``SPOOL_DELETIONS``) of the spool at ``spool``."""
        return spool / partition / f"{seq:08d}.parquet"

    @staticmethod
    def spool_parts(spool: Path, partition: str = "*") -> list[Path]:
        """The parts of one partition (of all, by default), in the order they were added."""
        return sorted(spool.glob(f"{partition}/*.parquet"))

    @staticmethod
    def spool_part_seq(part: Path) -> int | None:
        """The sequence number of a spool part; None for any other file."""
        return int(part.stem) if part.stem.isdigit() else None

    @staticmethod
    def spool_years(spool: Path) -> list[int]:
        """The paper years the spool at ``spool`` holds parts for."""
        if not spool.is_dir():
            return []
        return sorted(int(p.name) for p in spool.iterdir() if p.is_dir() and p.name.isdigit())


def _years_in(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    years = []
    for entry in directory.iterdir():
        match = _YEAR_FILE.match(entry.name)
        if match:
            years.append(int(match.group(1)))
    return sorted(years)
