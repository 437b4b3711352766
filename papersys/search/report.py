"""Reports of index runs: per model what was built or changed, and the job's total."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IndexReport:
    """One model's index run. ``action``: built | updated | current | no-vectors."""

    model: str
    action: str
    live: int = 0
    rows: int = 0
    added: int = 0
    replaced: int = 0
    removed: int = 0
    seconds: float = 0.0
    encoder: str = ""  # what happened to the query encoder: exported | current | unavailable: <why>

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "action": self.action,
            "indexed": self.live,
            "rows": self.rows,
            "added": self.added,
            "replaced": self.replaced,
            "removed": self.removed,
            "seconds": round(self.seconds, 3),
            "query_encoder": self.encoder,
        }

    def summary_line(self) -> str:
        encoder = f"; query encoder {self.encoder}" if self.encoder else ""
        if self.action == "no-vectors":
            return f"index {self.model}: no stored vectors yet (run `papersys embed autopatch`)"
        if self.action == "current":
            return f"index {self.model}: up to date, {self.live:,} papers{encoder}"
        return (
            f"index {self.model}: {self.action} in {self.seconds:,.1f}s, {self.live:,} papers "
            f"(+{self.added:,} added, {self.replaced:,} replaced, {self.removed:,} removed){encoder}"
        )


@dataclass(frozen=True)
class IndexJobReport:
    models: tuple[IndexReport, ...] = field(default_factory=tuple)
    text: TextIndexReport | None = None  # None: the full-text index was not part of this run

    def to_dict(self) -> dict[str, Any]:
        return {"models": [m.to_dict() for m in self.models], "text": self.text.to_dict() if self.text else None}

    def summary(self) -> list[str]:
        lines = [m.summary_line() for m in self.models]
        lines += self.text.summary() if self.text else []
        return lines or ["no enabled embedding model"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict(self.text.counts()) if self.text else {}
        for m in self.models:
            counts[f"indexed.{m.model}"] = m.live
            counts[f"added.{m.model}"] = m.added + m.replaced
            counts[f"removed.{m.model}"] = m.removed + m.replaced
        return counts


@dataclass(frozen=True)
class TextIndexReport:
    """A full-text index run. ``action``: built | updated | current | no-metadata | failed: <why>."""

    action: str
    count: int = 0
    added: int = 0
    replaced: int = 0
    removed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "indexed": self.count,
            "added": self.added,
            "replaced": self.replaced,
            "removed": self.removed,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> list[str]:
        if self.action == "no-metadata":
            return ["full-text index: no metadata yet (run `papersys ingest`)"]
        if self.action == "current":
            return [f"full-text index: up to date, {self.count:,} papers"]
        if self.action.startswith("failed"):
            return [f"full-text index: {self.action} (run `papersys index --text`)"]
        return [
            f"full-text index: {self.action} in {self.seconds:,.1f}s, {self.count:,} papers "
            f"(+{self.added:,} added, {self.replaced:,} replaced, {self.removed:,} removed)"
        ]

    def counts(self) -> dict[str, int]:
        return {"indexed.text": self.count, "added.text": self.added + self.replaced, "removed.text": self.removed}
