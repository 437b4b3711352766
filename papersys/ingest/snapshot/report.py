"""The report of a snapshot load (what was read, rejected, merged, and what happened to the watermark)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from papersys.report import Report


@dataclass(frozen=True)
class SnapshotReport:
    path: str
    dry_run: bool
    lines: int  # lines read, blank ones included
    records: int  # lines that mapped to a valid row
    kept: int  # valid rows that passed the sets/categories filter (and were spooled)
    filtered: int
    bad: int
    bad_samples: tuple[tuple[int, str], ...]  # the first few (line number, reason)
    years: Mapping[int, Mapping[str, int]]  # per year: new, updated, unchanged, superseded, rows
    newest_update_date: date | None
    watermarks_before: Mapping[str, date | None]
    watermarks_after: Mapping[str, date | None]
    watermark_actions: Mapping[str, str]
    resumed_from_byte: int | None = None  # decompressed byte offset an interrupted load continued from
    resumed_from_line: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    phases_s: Mapping[str, float] = field(default_factory=dict)  # this run: "read" (parse + spool), "merge"
    records_per_s: float = 0.0  # lines parsed by this run per second of it
    index: Report | None = None  # what updating the full-text index did afterwards (the service's)

    def total(self, what: str) -> int:
        return sum(change.get(what, 0) for change in self.years.values())

    def counts(self) -> dict[str, int]:
        """The figures recorded in the job history."""
        return {
            "lines": self.lines,
            "records": self.records,
            "kept": self.kept,
            "filtered": self.filtered,
            "bad": self.bad,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "superseded": self.superseded,
        }

    @property
    def new(self) -> int:
        return self.total("new")

    @property
    def updated(self) -> int:
        return self.total("updated")

    @property
    def unchanged(self) -> int:
        return self.total("unchanged")

    @property
    def superseded(self) -> int:
        return self.total("superseded")

    def to_dict(self) -> dict[str, Any]:
        def iso(value: date | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "path": self.path,
            "dry_run": self.dry_run,
            "lines": self.lines,
            "records": self.records,
            "kept": self.kept,
            "filtered": self.filtered,
            "bad": self.bad,
            "bad_samples": [{"line": n, "reason": r} for n, r in self.bad_samples],
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "superseded": self.superseded,
            "years": {str(y): dict(c) for y, c in sorted(self.years.items())},
            "newest_update_date": iso(self.newest_update_date),
            "watermarks": {
                key: {
                    "before": iso(self.watermarks_before.get(key)),
                    "after": iso(self.watermarks_after.get(key)),
                    "action": action,
                }
                for key, action in self.watermark_actions.items()
            },
            "resumed_from": (
                None
                if self.resumed_from_byte is None
                else {"byte": self.resumed_from_byte, "line": self.resumed_from_line}
            ),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "phases_s": {k: round(v, 3) for k, v in self.phases_s.items()},
            "records_per_s": round(self.records_per_s, 1),
            "index": self.index.to_dict() if self.index else None,
        }

    def summary(self) -> list[str]:
        verb = "would merge" if self.dry_run else "merged"
        lines = [f"snapshot {self.path}{' (dry run: nothing written)' if self.dry_run else ''}"]
        lines += self.notes
        if self.resumed_from_line is not None:
            lines.append(f"resumed an interrupted load after line {self.resumed_from_line:,}")
        lines.append(
            f"{self.lines:,} lines: {self.records:,} records, {self.bad:,} bad, "
            f"{self.filtered:,} filtered out by sets/categories, {self.kept:,} kept"
        )
        for line_no, reason in self.bad_samples:
            lines.append(f"  bad line {line_no:,}: {reason}")
        if self.bad > len(self.bad_samples):
            lines.append(f"  … and {self.bad - len(self.bad_samples):,} more bad lines")
        lines.append(
            f"{verb}: {self.new:,} new, {self.updated:,} updated, {self.unchanged:,} unchanged, "
            f"{self.superseded:,} superseded by newer stored rows, over {len(self.years)} year files"
        )
        for key, action in self.watermark_actions.items():
            before = self.watermarks_before.get(key)
            after = self.watermarks_after.get(key)
            if action == "set":
                what = "would be set" if self.dry_run else "set"
                lines.append(f"watermark [{key}]: {what} to {after} (the snapshot's newest update_date)")
            elif action == "kept":
                lines.append(f"watermark [{key}]: kept at {before} (already set; the OAI harvest continues from it)")
            else:
                lines.append(f"watermark [{key}]: none (no valid records)")
        lines.append(f"{self.seconds:,.1f} s, {self.records_per_s:,.0f} records/s")
        return lines + (self.index.summary() if self.index else [])
