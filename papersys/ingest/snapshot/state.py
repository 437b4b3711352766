"""The resumable-load checkpoint of a snapshot load (``state/snapshot.json``) and the file identity it pins."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from papersys.errors import SnapshotError, StoreError
from papersys.ingest.snapshot.parse import MAX_BAD_SAMPLES, ChunkResult
from papersys.store.atomic import read_json, remove, write_json

_VERSION = 1
_HEAD_BYTES = 1 << 20


@dataclass(frozen=True)
class FileIdentity:
    """What makes "the same snapshot file": size, mtime and a hash of its first MiB (path is informational)."""

    path: str
    size: int
    mtime_ns: int
    head_sha256: str

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        try:
            stat = path.stat()
            if not path.is_file():
                raise SnapshotError(f"{path}: not a regular file")
            with path.open("rb") as handle:
                head = handle.read(_HEAD_BYTES)
        except FileNotFoundError:
            raise SnapshotError(f"{path}: no such file") from None
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns, hashlib.sha256(head).hexdigest())

    def same_file(self, other: FileIdentity) -> bool:
        return (self.size, self.mtime_ns, self.head_sha256) == (other.size, other.mtime_ns, other.head_sha256)


@dataclass(frozen=True)
class Counts:
    """Cumulative over every run of one load (a resumed run adds to what the killed one counted)."""

    lines: int = 0
    valid: int = 0
    kept: int = 0
    filtered: int = 0
    bad: int = 0
    bad_samples: tuple[tuple[int, str], ...] = ()
    newest: date | None = None  # newest update_date of any valid line

    def plus(self, lines: int, chunk: ChunkResult) -> Counts:
        """These counts with one more chunk of ``lines`` lines."""
        newest = max((d for d in (self.newest, chunk.newest) if d is not None), default=None)
        return Counts(
            lines=self.lines + lines,
            valid=self.valid + chunk.valid,
            kept=self.kept + len(chunk.batch),
            filtered=self.filtered + chunk.filtered,
            bad=self.bad + chunk.bad,
            bad_samples=(self.bad_samples + tuple(chunk.bad_samples))[:MAX_BAD_SAMPLES],
            newest=newest,
        )


@dataclass(frozen=True)
class SnapshotCheckpoint:
    """Chunks up to ``offset`` (decompressed bytes) / ``line_no`` are safely in the spool at ``spool_dir``.

    ``phase`` is ``spool`` while reading and ``merge`` once the whole file is spooled; ``merged`` holds
    the upsert counts of the years already merged, so a resumed merge skips them.
    """

    file: FileIdentity
    spool_dir: str
    keep: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # (sets, categories) the spool was filtered by
    phase: str = "spool"
    offset: int = 0
    line_no: int = 0
    next_seq: int = 1
    counts: Counts = field(default_factory=Counts)
    merged: dict[int, dict[str, int]] = field(default_factory=dict)
    watermarks_before: dict[str, str | None] | None = None  # recorded when the merge starts
    runs: int = 1

    def to_json(self) -> dict[str, Any]:
        counts = asdict(self.counts)
        counts["bad_samples"] = [list(s) for s in self.counts.bad_samples]
        counts["newest"] = self.counts.newest.isoformat() if self.counts.newest else None
        return {
            "version": _VERSION,
            "file": asdict(self.file),
            "spool_dir": self.spool_dir,
            "keep": {"sets": list(self.keep[0]), "categories": list(self.keep[1])},
            "phase": self.phase,
            "offset": self.offset,
            "line_no": self.line_no,
            "next_seq": self.next_seq,
            "counts": counts,
            "merged": {str(year): change for year, change in sorted(self.merged.items())},
            "watermarks_before": self.watermarks_before,
            "runs": self.runs,
        }

    @classmethod
    def from_json(cls, raw: Any) -> SnapshotCheckpoint:
        if not isinstance(raw, dict) or raw.get("version") != _VERSION:
            raise ValueError("unknown checkpoint version")
        counts = dict(raw["counts"])
        counts["bad_samples"] = tuple((int(n), str(r)) for n, r in counts["bad_samples"])
        counts["newest"] = date.fromisoformat(counts["newest"]) if counts["newest"] else None
        if raw["phase"] not in ("spool", "merge"):
            raise ValueError(f"unknown phase {raw['phase']!r}")
        return cls(
            file=FileIdentity(**raw["file"]),
            spool_dir=str(raw["spool_dir"]),
            keep=(tuple(raw["keep"]["sets"]), tuple(raw["keep"]["categories"])),
            phase=raw["phase"],
            offset=int(raw["offset"]),
            line_no=int(raw["line_no"]),
            next_seq=int(raw["next_seq"]),
            counts=Counts(**counts),
            merged={int(year): {k: int(v) for k, v in change.items()} for year, change in raw["merged"].items()},
            watermarks_before=raw.get("watermarks_before"),
            runs=int(raw.get("runs", 1)),
        )

    def advance(self, **changes: Any) -> SnapshotCheckpoint:
        return replace(self, **changes)


def resume_refusal(
    previous: SnapshotCheckpoint, identity: FileIdentity, keep: tuple[tuple[str, ...], tuple[str, ...]]
) -> str | None:
    """Why an unfinished load must not be continued with this file and filter; None when it may."""
    if not previous.file.same_file(identity):
        return f"the unfinished load was of another file ({previous.file.path})"
    if previous.keep != keep:
        return "the unfinished load used other ingest.sets/categories"
    return None


def read_checkpoint(path: Path) -> tuple[SnapshotCheckpoint | None, str | None]:
    """The stored checkpoint, or (None, why it was unusable) — an unusable one means starting afresh."""
    try:
        raw = read_json(path)
    except StoreError as exc:
        return None, f"unreadable checkpoint ({exc.problem})"
    if raw is None:
        return None, None
    try:
        return SnapshotCheckpoint.from_json(raw), None
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"unrecognised checkpoint ({type(exc).__name__}: {exc})"


def save_checkpoint(path: Path, checkpoint: SnapshotCheckpoint) -> None:
    write_json(checkpoint.to_json(), path)


def clear_checkpoint(path: Path) -> None:
    remove(path)
