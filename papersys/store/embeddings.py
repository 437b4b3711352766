"""The embedding store of one model (``EmbeddingStore``): ``<year>.parquet`` files, pending chunk parts and
``manifest.json``. Every read merges a year file with its parts, one row per id (latest written wins)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from papersys.errors import StoreError
from papersys.faults import crash_point
from papersys.store.atomic import Compression, read_json, sweep_temp_files, write_json, write_parquet
from papersys.store.layout import Layout
from papersys.store.storage import storage_guard

EMBEDDED_AT = pl.Datetime("us", "UTC")
STORAGE_DTYPES: dict[str, pl.DataType] = {"float32": pl.Float32(), "float16": pl.Float16()}
KEY_COLUMNS = ("id", "text_hash", "embedded_at")
_VALIDITY_BLOCK = 65_536  # rows checked per numpy block: bounds the temporary boolean arrays
# Key-value metadata of the files papersys writes: how many of its vectors are invalid. A key-only read
# (gap detection) of a file that says 0 skips its vector column, the bulk of the file; a file without the
# key (written by another tool, or before it existed) has its vectors read and checked.
INVALID_ROWS_KEY = "papersys.invalid_rows"
# Parts are transient (compaction reads them back into the year file): lz4 writes and reads them in about
# half zstd's time for 8 % more bytes; year files, which stay, keep zstd.
PART_COMPRESSION: Compression = "lz4"


def embedding_schema(dim: int, dtype: str) -> dict[str, pl.DataType]:
    return {
        "id": pl.String(),
        "text_hash": pl.String(),
        "vector": pl.Array(STORAGE_DTYPES[dtype], dim),
        "embedded_at": EMBEDDED_AT,
    }


# manifest -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    """What the stored vectors of one model were made with. Identity fields must match the config."""

    name: str
    backend: str
    dim: int
    dtype: str
    normalize: bool
    template: str
    prefix: str
    max_length: int
    papersys_version: str = ""
    created_at: datetime | None = None
    valid_since: datetime | None = None  # rows embedded before this are stale (set by a re-embed)

    IDENTITY = ("name", "backend", "dim", "dtype", "normalize", "template", "prefix", "max_length")

    def differences(self, configured: Manifest) -> list[str]:
        """``field: stored X != configured Y`` for every identity field that differs."""
        ours, theirs = self.identity(), configured.identity()
        return [f"{k}: stored {ours[k]!r} != configured {theirs[k]!r}" for k in ours if ours[k] != theirs[k]]

    def identity(self) -> dict[str, Any]:
        """The fields that must match the configured model."""
        return {key: getattr(self, key) for key in self.IDENTITY}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("created_at", "valid_since"):
            out[key] = out[key].isoformat() if out[key] else None
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for key in ("created_at", "valid_since"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


def read_manifest(layout: Layout, alias: str) -> Manifest | None:
    path = layout.manifest_file(alias)
    raw = read_json(path)
    if raw is None:
        return None
    try:
        return Manifest.from_dict(raw)
    except (TypeError, ValueError, AttributeError) as exc:
        raise StoreError(path, f"is not a papersys embedding manifest ({exc})", "restore it or fix it by hand") from exc


def write_manifest(layout: Layout, alias: str, manifest: Manifest) -> None:
    write_json(manifest.to_dict(), layout.manifest_file(alias))


# files ----------------------------------------------------------------------------------------------------
def pending_parts(layout: Layout, alias: str, year: int | None = None) -> list[Path]:
    """Part files of ``year`` (or of every year), oldest first."""
    return [part.path for part in layout.embedding_parts(alias, year)]


def stored_years(layout: Layout, alias: str) -> list[int]:
    """Years with a year file or a pending part."""
    parts = {part.year for part in layout.embedding_parts(alias)}
    return sorted(set(layout.embedding_years(alias)) | parts)


# the handle -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compaction:
    rows: int
    pruned: int
    parts: int


@dataclass(frozen=True)
class EmbeddingStore:
    """One model's stored vectors: ``embeddings/<alias>/`` in ``layout``, ``dim`` wide, stored as ``dtype``.

    ``valid_since`` is the manifest's: rows embedded before it read as stale, and a year file of another
    width whose rows all predate it (a re-embed to a new dim in progress) reads as unusable, not as an error.
    """

    layout: Layout
    alias: str
    dim: int
    dtype: str = "float32"
    valid_since: datetime | None = None

    # paths ------------------------------------------------------------------------------------------------
    @property
    def manifest_file(self) -> Path:
        return self.layout.manifest_file(self.alias)

    @property
    def coverage_cache(self) -> Path:
        return self.layout.coverage_cache(self.alias)

    @property
    def worker_log(self) -> Path:
        return self.layout.worker_log(self.alias)

    def year_file(self, year: int) -> Path:
        return self.layout.embedding_file(self.alias, year)

    # files ------------------------------------------------------------------------------------------------
    def years(self) -> list[int]:
        """Years with a year file or a pending part."""
        return stored_years(self.layout, self.alias)

    def pending_parts(self, year: int | None = None) -> list[Path]:
        """Part files of ``year`` (or of every year), oldest first."""
        return pending_parts(self.layout, self.alias, year)

    def pending_years(self) -> list[int]:
        """Years with parts not yet compacted."""
        return sorted({part.year for part in self.layout.embedding_parts(self.alias)})

    def files_signature(self, year: int) -> list[list[Any]]:
        """(name, size, mtime_ns, inode) of the year file and its parts: changes whenever any of them does."""
        sig = []
        for path in [self.year_file(year), *self.pending_parts(year)]:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            sig.append([path.name, st.st_size, st.st_mtime_ns, st.st_ino])
        return sig

    def sweep(self) -> None:
        """Remove temp files that writers killed mid-write left behind."""
        sweep_temp_files(self.layout.embeddings_dir(self.alias))
        sweep_temp_files(self.layout.embedding_pending_dir(self.alias))
        sweep_temp_files(self.layout.text_hash_dir(self.alias))

    # manifest ---------------------------------------------------------------------------------------------
    def read_manifest(self) -> Manifest | None:
        return read_manifest(self.layout, self.alias)

    def write_manifest(self, manifest: Manifest) -> None:
        write_manifest(self.layout, self.alias, manifest)

    # vectors ----------------------------------------------------------------------------------------------
    def canonical(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` cast to the stored schema, in schema column order."""
        schema = embedding_schema(self.dim, self.dtype)
        return frame.select([pl.col(name).cast(kind) for name, kind in schema.items()])

    def read(self, year: int, *, vectors: bool = True) -> pl.DataFrame:
        """The stored rows of one year: ``id, text_hash, embedded_at, valid`` (+ ``vector``), one per id.

        Year file and pending parts; where an id repeats, the latest written file wins (parts after the year
        file, later parts after earlier ones), so a kill between compaction and part deletion shows no
        duplicates. That is also the newest ``embedded_at``, unless the clock stepped back.
        """
        frames = []
        for path in [self.year_file(year), *self.pending_parts(year)]:
            if not path.exists():
                continue
            frame = _read_file(path, self.dim, self.dtype, self.valid_since, vectors=vectors)
            frames.append(frame if vectors else frame.drop("vector"))
        columns = [*KEY_COLUMNS, "valid", *(["vector"] if vectors else [])]
        if not frames:
            schema = embedding_schema(self.dim, self.dtype) | {"valid": pl.Boolean()}
            return pl.DataFrame(schema=schema).select(columns)
        frame = pl.concat(frames, how="vertical")  # in write order: the year file, then parts oldest first
        if frame["id"].is_duplicated().any():
            frame = frame.unique(subset="id", keep="last", maintain_order=True)
        return frame.select(columns)

    def write_part(self, year: int, frame: pl.DataFrame) -> Path:
        """Write one durable chunk of new vectors as the next part file of ``year``."""
        parts = self.layout.embedding_parts(self.alias, year)
        seq = parts[-1].seq + 1 if parts else 1
        path = self.layout.embedding_part_file(self.alias, year, seq)
        _write_checked(self.canonical(frame), path, compression=PART_COMPRESSION)
        return path

    def compact(self, year: int, *, keep_ids: pl.Series | None = None) -> Compaction:
        """Merge the year file and its parts into one new year file, drop ids not in ``keep_ids``, delete parts.

        The year file is replaced atomically first and the parts deleted after, so a kill in between leaves
        parts that merely repeat rows of the year file.
        """
        crash_point("embed.compacting")  # parts durable, the year file about to be rewritten
        parts = self.pending_parts(year)
        frame = self.read(year)
        pruned = 0
        if keep_ids is not None:
            kept = frame.filter(pl.col("id").is_in(keep_ids.implode()))
            pruned = frame.height - kept.height
            frame = kept
        path = self.year_file(year)
        if frame.height or path.exists():
            invalid = frame.height - int(frame["valid"].sum())  # as read: no second pass over the vectors
            _write_checked(self.canonical(frame.sort("id")), path, invalid=invalid)
        crash_point("embed.compacted")  # the year file holds every row, its parts are not deleted yet
        for part in parts:
            with storage_guard(part, "delete"):
                part.unlink(missing_ok=True)
        return Compaction(rows=frame.height, pruned=pruned, parts=len(parts))


def read_embeddings(
    layout: Layout,
    alias: str,
    year: int,
    *,
    dim: int,
    dtype: str = "float32",
    valid_since: datetime | None = None,
    vectors: bool = True,
) -> pl.DataFrame:
    """``EmbeddingStore.read`` for a caller that holds no handle."""
    return EmbeddingStore(layout, alias, dim, dtype, valid_since).read(year, vectors=vectors)


# reading --------------------------------------------------------------------------------------------------
def vector_validity(vectors: pl.Series) -> pl.Series:
    """True where a fixed-size vector is present, finite everywhere and not all zero."""
    matrix = vectors.to_numpy()  # null rows and null elements come back as NaN
    ok = np.empty(len(vectors), dtype=bool)
    for start in range(0, len(vectors), _VALIDITY_BLOCK):
        block = matrix[start : start + _VALIDITY_BLOCK]
        ok[start : start + len(block)] = np.isfinite(block).all(axis=1) & (block != 0).any(axis=1)
    return pl.Series("valid", ok)


def _write_checked(
    frame: pl.DataFrame, path: Path, *, compression: Compression = "zstd", invalid: int | None = None
) -> None:
    """Write a canonical frame, recording in the file how many of its vectors are invalid (``invalid``, when
    the caller knows it: else counted here)."""
    if invalid is None:
        invalid = frame.height - int(vector_validity(frame["vector"]).sum())
    write_parquet(frame, path, compression=compression, metadata={INVALID_ROWS_KEY: str(invalid)})


def _known_valid(path: Path) -> bool:
    """Whether the file records that every vector in it is valid (see INVALID_ROWS_KEY)."""
    try:
        return pl.read_parquet_metadata(path).get(INVALID_ROWS_KEY) == "0"
    except Exception:  # unreadable metadata: read the vectors, which raises the proper error if need be
        return False


def _schema_of(path: Path) -> dict[str, pl.DataType]:
    try:
        return dict(pl.read_parquet_schema(path))
    except Exception as exc:  # polars raises several types for a torn or non-Parquet file
        raise StoreError(
            path,
            f"is not a readable Parquet file ({type(exc).__name__})",
            "restore it from a backup, or move it aside and re-run autopatch to rebuild it",
        ) from exc


def _read_file(path: Path, dim: int, dtype: str, valid_since: datetime | None, *, vectors: bool = True) -> pl.DataFrame:
    """One file in the canonical schema plus ``valid``; lenient with List vectors, strict with Array widths.

    Without ``vectors``, a file of the right width that records no invalid vector is not read past its keys
    (the ``vector`` column is then all null)."""
    schema = _schema_of(path)
    missing = [c for c in ("id", "text_hash", "vector", "embedded_at") if c not in schema]
    if missing:
        raise StoreError(path, f"is not a papersys embedding file (lacks {', '.join(missing)})", "move it aside")
    vtype = schema["vector"]
    keys = pl.read_parquet(path, columns=list(KEY_COLUMNS))
    keys = keys.with_columns(pl.col("id").cast(pl.String), pl.col("text_hash").cast(pl.String), _utc("embedded_at"))
    target = pl.Array(STORAGE_DTYPES[dtype], dim)
    if isinstance(vtype, pl.Array) and vtype.size != dim:
        newest = keys["embedded_at"].max()
        if valid_since is not None and (keys.height == 0 or (isinstance(newest, datetime) and newest < valid_since)):
            # every row predates a re-embed that changed the dim: they are stale, their vectors unusable
            return keys.with_columns(pl.lit(None, dtype=target).alias("vector"), valid=pl.lit(False))
        raise StoreError(
            path,
            f"vector column is {vtype} but the manifest says dim {dim}",
            "the file contradicts its manifest; move it aside (autopatch then re-embeds that year)",
        )
    if not isinstance(vtype, pl.Array | pl.List) or not vtype.inner.is_numeric():
        raise StoreError(path, f"vector column has type {vtype}, not an array of floats", "move it aside")
    known_valid = vtype == target and _known_valid(path)
    if not vectors and known_valid:
        return keys.with_columns(pl.lit(None, dtype=target).alias("vector"), valid=pl.lit(True))
    vec = pl.read_parquet(path, columns=["vector"]).to_series()
    if known_valid:  # the writer counted no invalid vector: no second pass over them
        return keys.with_columns(vec.alias("vector"), valid=pl.lit(True))
    if isinstance(vtype, pl.List):  # hand-written or legacy: rows of the wrong length are invalid, not fatal
        vec = pl.select(
            pl.when(vec.list.len() == dim).then(vec.cast(pl.List(pl.Float32))).otherwise(None).list.to_array(dim)
        ).to_series()
    vec = vec.cast(target)
    return keys.with_columns(vec.alias("vector"), vector_validity(vec))


def _utc(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
