"""The report of an OAI-PMH harvest: per set what was harvested, and what the pages did to the store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from papersys.report import Report


@dataclass(frozen=True)
class SetReport:
    set: str
    start: date
    until: date
    reason: str
    windows: int
    watermark: date | None  # after the run


@dataclass(frozen=True)
class IngestReport:
    sets: tuple[SetReport, ...]
    pages: int
    records: int
    new: int
    updated: int
    unchanged: int
    deleted: int
    superseded: int
    filtered: int
    invalid: int
    requests: int
    retries: int
    window_restarts: int
    years: dict[int, int] = field(default_factory=dict)  # year → rows new/updated/deleted there
    seconds: float = 0.0
    dry_run: bool = False
    index: Report | None = None  # what updating the full-text index did afterwards (the service's)

    def counts(self) -> dict[str, int]:
        return {
            k: getattr(self, k)
            for k in (
                "pages",
                "records",
                "new",
                "updated",
                "unchanged",
                "deleted",
                "superseded",
                "filtered",
                "invalid",
                "requests",
                "retries",
            )
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["years"] = {str(y): n for y, n in sorted(self.years.items())}
        data["index"] = self.index.to_dict() if self.index else None
        for s in data["sets"]:
            for key in ("start", "until", "watermark"):
                s[key] = s[key].isoformat() if s[key] else None
        return data

    def summary(self) -> list[str]:
        lines = []
        for s in self.sets:
            lines.append(f"set {s.set}: {s.start} .. {s.until} in {s.windows} window(s) — {s.reason}")
        years = ", ".join(f"{y}: {n}" for y, n in sorted(self.years.items())) or "none"
        lines.append(
            f"{'[dry run] ' if self.dry_run else ''}{self.pages} pages, {self.records} records: "
            f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged, {self.deleted} deleted"
            f"{f', {self.superseded} older than stored' if self.superseded else ''}"
            f"{f', {self.filtered} filtered out' if self.filtered else ''}"
            f"{f', {self.invalid} unusable' if self.invalid else ''}"
        )
        lines.append(f"years touched: {years}")
        lines.append(f"{self.requests} requests ({self.retries} retries) in {self.seconds:.1f}s")
        return lines + (self.index.summary() if self.index else [])
