"""Harvest checkpoints in ``state/harvest.json``: per-set watermark and the window in progress."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from papersys.errors import StoreError
from papersys.store.atomic import read_json, write_json
from papersys.store.layout import Layout

ALL_SETS = "all"
_VERSION = 1


def set_key(set_spec: str | None) -> str:
    """Checkpoint key of an OAI set ('' or None = all of arXiv)."""
    return set_spec or ALL_SETS


@dataclass(frozen=True)
class Checkpoint:
    watermark: date  # last datestamp day fully harvested (inclusive)
    updated_at: datetime
    source: str = "oai"  # "oai" | "snapshot"


@dataclass(frozen=True)
class WindowInProgress:
    set_key: str
    start: date
    until: date
    started_at: datetime
    pages: int = 0
    records: int = 0


@dataclass(frozen=True)
class HarvestState:
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    in_progress: WindowInProgress | None = None

    def watermark(self, key: str) -> date | None:
        cp = self.checkpoints.get(key)
        return cp.watermark if cp else None

    def with_checkpoint(self, key: str, checkpoint: Checkpoint) -> HarvestState:
        return replace(self, checkpoints={**self.checkpoints, key: checkpoint})

    def with_window(self, window: WindowInProgress | None) -> HarvestState:
        return replace(self, in_progress=window)


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def load_state(layout: Layout) -> HarvestState:
    raw = read_json(layout.harvest_state)
    if raw is None:
        return HarvestState()
    try:
        checkpoints = {
            key: Checkpoint(date.fromisoformat(cp["watermark"]), _dt(cp["updated_at"]), cp.get("source", "oai"))
            for key, cp in raw.get("checkpoints", {}).items()
        }
        win = raw.get("in_progress")
        window = None
        if win:
            window = WindowInProgress(
                win["set_key"],
                date.fromisoformat(win["start"]),
                date.fromisoformat(win["until"]),
                _dt(win["started_at"]),
                int(win.get("pages", 0)),
                int(win.get("records", 0)),
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(
            layout.harvest_state,
            f"is not a papersys harvest state ({exc})",
            "fix or delete it; without it the next ingest starts initial_days back",
        ) from exc
    return HarvestState(checkpoints, window)


def save_state(layout: Layout, state: HarvestState) -> None:
    payload: dict[str, Any] = {
        "version": _VERSION,
        "checkpoints": {
            key: {"watermark": cp.watermark.isoformat(), "updated_at": cp.updated_at.isoformat(), "source": cp.source}
            for key, cp in sorted(state.checkpoints.items())
        },
        "in_progress": None,
    }
    if state.in_progress:
        w = state.in_progress
        payload["in_progress"] = {
            "set_key": w.set_key,
            "start": w.start.isoformat(),
            "until": w.until.isoformat(),
            "started_at": w.started_at.isoformat(),
            "pages": w.pages,
            "records": w.records,
        }
    write_json(payload, layout.harvest_state)
