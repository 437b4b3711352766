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

    def to_dict(self) -> dict[str, Any]:
        return {"models": [m.to_dict() for m in self.models]}

    def summary(self) -> list[str]:
        return [m.summary_line() for m in self.models] or ["no enabled embedding model"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.models:
            counts[f"indexed.{m.model}"] = m.live
            counts[f"added.{m.model}"] = m.added + m.replaced
            counts[f"removed.{m.model}"] = m.removed + m.replaced
        return counts
