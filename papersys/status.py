"""``papersys status``: what is stored, what is missing, what ran, what is next — from files alone.

Takes no lock and writes nothing. Paper counts come from Parquet footers; coverage per model from the
coverage cache that autopatch/backlog keep (years whose inputs changed since are recomputed in memory).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from papersys.config import Config
from papersys.errors import PapersysError, StoreError
from papersys.runtime import utc_stamp
from papersys.store.atomic import pid_alive, read_json
from papersys.store.jobs import read_jobs
from papersys.store.layout import Layout
from papersys.store.metadata import DELETION_SCHEMA, METADATA_SCHEMA, check_schema
from papersys.store.state import load_state

_JOBS_TAIL = 1 << 20  # the last MiB of jobs.jsonl holds thousands of runs


@dataclass(frozen=True)
class ModelStatus:
    alias: str
    name: str
    enabled: bool
    papers: int = 0
    valid: int = 0
    missing: int = 0
    stale: int = 0
    invalid: int = 0
    orphans: int = 0
    years: dict[int, dict[str, int]] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)  # indexed papers, how far behind (search/source.py)
    problem: str | None = None

    @property
    def coverage(self) -> float:
        return self.valid / self.papers if self.papers else 1.0


@dataclass(frozen=True)
class DaemonStatus:
    state: str  # running | stopped | stale
    pid: int | None = None
    started: str | None = None
    next_runs: dict[str, str | None] = field(default_factory=dict)
    running: list[str] = field(default_factory=list)
    metrics: str | None = None


@dataclass(frozen=True)
class StatusReport:
    data_dir: str
    generated_at: str
    papers: dict[int, int]
    total_papers: int
    deleted: int
    models: tuple[ModelStatus, ...]
    watermarks: dict[str, dict[str, str]]
    window_in_progress: dict[str, Any] | None
    last_runs: dict[str, dict[str, Any]]
    daemon: DaemonStatus
    disk_bytes: dict[str, int]
    text_index: dict[str, Any] = field(default_factory=dict)  # indexed papers, lag (search/text_build.py)
    freshness: dict[str, Any] = field(default_factory=dict)  # newest stored datestamp and its age
    audit: dict[str, Any] = field(default_factory=dict)  # the last `papersys audit` ({} if none)
    problems: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["papers"] = {str(y): n for y, n in sorted(self.papers.items())}
        for model, raw in zip(self.models, data["models"], strict=True):
            raw["years"] = {str(y): c for y, c in sorted(model.years.items())}
            raw["coverage"] = round(model.coverage, 6)
        data["problems"] = list(self.problems)
        return data

    def summary(self) -> list[str]:
        lines = [f"data: {self.data_dir} ({_size(self.disk_bytes.get('total', 0))})"]
        years = ", ".join(f"{y}: {n:,}" for y, n in sorted(self.papers.items()))
        lines.append(f"papers: {self.total_papers:,}" + (f" ({years})" if years else ""))
        for m in self.models:
            if m.problem:
                lines.append(f"model {m.alias}: {m.problem}")
                continue
            flag = "" if m.enabled else " [disabled]"
            lines.append(
                f"model {m.alias}{flag}: {m.valid:,}/{m.papers:,} valid ({m.coverage:.1%}); missing "
                f"{m.missing:,}, stale {m.stale:,}, invalid {m.invalid:,}, orphans {m.orphans:,}"
            )
            lines.append(_index_line(m))
        lines.append(f"full-text index: {text_index_state(self.text_index)}")
        lines.append(f"freshness: {freshness_line(self.freshness)}")
        lines.append(f"audit: {audit_line(self.audit)}")
        for key, mark in sorted(self.watermarks.items()):
            lines.append(
                f"harvest {key}: watermark {mark['watermark']} (updated {mark['updated_at']}, {mark['source']})"
            )
        if not self.watermarks:
            lines.append("harvest: never ran")
        if self.window_in_progress:
            w = self.window_in_progress
            lines.append(
                f"harvest window {w['start']}..{w['until']} ({w['set']}) did not finish; the next run redoes it"
            )
        for job, run in sorted(self.last_runs.items()):
            error = f": {run['error']}" if run.get("error") else ""
            lines.append(f"last {job}: {run.get('outcome')} at {run.get('end')} ({run.get('trigger')}){error}")
        d = self.daemon
        if d.state == "running":
            nxt = ", ".join(f"{k} {v}" for k, v in sorted(d.next_runs.items()) if v) or "none"
            lines.append(f"daemon: running (pid {d.pid}, since {d.started}); next: {nxt}; metrics {d.metrics}")
        elif d.state == "stale":
            lines.append(f"daemon: not running (stale daemon.json of pid {d.pid}; it did not exit cleanly)")
        else:
            lines.append("daemon: not running")
        lines += [f"problem: {p}" for p in self.problems]
        return lines


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def freshness_line(f: dict[str, Any]) -> str:
    """Status's freshness line: the newest stored datestamp and how old it is."""
    feed = f"; newest feed item {f['newest_feed_item']}" if f.get("newest_feed_item") else ""
    if not f.get("newest_datestamp"):
        return "no papers stored" + feed
    return f"newest datestamp {f['newest_datestamp']} ({_age(f['age_seconds'])} old){feed}"


def audit_line(a: dict[str, Any]) -> str:
    """Status's audit line: when, over what, what it found and what is left."""
    if not a:
        return "never ran (`papersys audit`)"
    found = ", ".join(f"{a['counts'].get(c, 0)} {c}" for c in ("missing", "stale", "deleted"))
    repaired = f"; repaired {a['fixed']}" if a["repaired"] else ""
    left = "clean" if a["clean"] else f"{sum(a['remaining'].values())} gap(s) remain"
    return f"{a['at']} over {a['from']}..{a['until']}: {a['listed']:,} listed, {found}{repaired}; {left}"


def _newest_feed_item(layout: Layout, problems: list[str]) -> str | None:
    try:
        state = read_json(layout.feed_state)
    except PapersysError as exc:
        problems.append(str(exc))
        return None
    feeds = state.get("feeds") if isinstance(state, dict) else None
    stamps = [f.get("newest_item") for f in feeds.values() if isinstance(f, dict)] if isinstance(feeds, dict) else []
    return max((str(s) for s in stamps if s), default=None)


def _freshness(layout: Layout, now: datetime, problems: list[str]) -> dict[str, Any]:
    from papersys.store.metadata import newest_datestamp

    fresh: dict[str, Any] = {
        "newest_datestamp": None,
        "age_seconds": None,
        "newest_feed_item": _newest_feed_item(layout, problems),
    }
    try:
        newest = newest_datestamp(layout)
    except StoreError:  # a damaged year file is already reported by the paper counts
        return fresh
    if newest is not None:
        start = datetime(newest.year, newest.month, newest.day, tzinfo=UTC)
        fresh |= {"newest_datestamp": newest.isoformat(), "age_seconds": round((now - start).total_seconds())}
    return fresh


def _audit(layout: Layout, problems: list[str]) -> dict[str, Any]:
    try:
        saved = read_json(layout.audit_state)
    except PapersysError as exc:
        problems.append(str(exc))
        return {}
    if not isinstance(saved, dict):
        return {}
    try:
        return {
            "at": saved["at"],
            "from": saved["from"],
            "until": saved["until"],
            "sets": saved["sets"],
            "listed": saved["listed"],
            "counts": saved["counts"],
            "repaired": saved["repaired"],
            "fixed": saved["fixed"],
            "remaining": {c: len(ids) for c, ids in saved["remaining"].items()},
            "clean": saved["clean"],
        }
    except (KeyError, TypeError, AttributeError):
        problems.append(f"{layout.audit_state}: not a papersys audit result (run papersys audit again)")
        return {}


def _index_line(m: ModelStatus) -> str:
    i = m.index
    if i.get("problem"):
        return f"index {m.alias}: {i['problem']}"
    if not i.get("updated_at"):
        return f"index {m.alias}: none yet (`papersys index` builds it)"
    state = "current" if i["current"] else f"behind by {i['behind']:,} (changed since: {_years(i['changed_years'])})"
    return f"index {m.alias}: {i['indexed']:,} papers, {state}; updated {i['updated_at']}"


def text_index_state(t: dict[str, Any]) -> str:
    """The full-text index's line of status (plain text; the rich view shows the same)."""
    if t.get("error"):
        return str(t["error"])
    if not t.get("updated_at"):
        return "none yet (`papersys index --text` builds it)"
    behind = f"behind by ~{t['behind']:,} papers" if t.get("behind") else "behind"
    state = "current" if t["current"] else f"{behind} (changed since: {_years(t['changed_years'])})"
    return f"{t['indexed']:,} papers, {state}; updated {t['updated_at']}"


def _text_index(layout: Layout, papers: int) -> dict[str, Any]:
    from papersys.search.text_build import text_state

    state = text_state(layout)
    state["behind"] = 0 if state["current"] else max(papers - state["indexed"], 0)
    return state


def _years(years: list[int]) -> str:
    shown = ", ".join(str(y) for y in years[:5])
    return shown + (f" and {len(years) - 5} more years" if len(years) > 5 else "")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _disk(layout: Layout) -> dict[str, int]:
    """Bytes under metadata/, state/, each embeddings/<alias>/, and in total (one walk of the tree)."""
    sizes = {directory.name: _tree_size(directory) for directory in (layout.metadata_dir, layout.state_dir)}
    if layout.embeddings_root.is_dir():
        for entry in sorted(layout.embeddings_root.iterdir()):
            if entry.is_dir():
                sizes[entry.relative_to(layout.root).as_posix()] = _tree_size(entry)  # embeddings/<alias>
    rest = 0
    counted = (layout.metadata_dir, layout.state_dir, layout.embeddings_root)
    if layout.root.is_dir():
        for entry in layout.root.iterdir():
            if entry not in counted:
                rest += _tree_size(entry) if entry.is_dir() else entry.stat().st_size
    sizes["total"] = sum(sizes.values()) + rest
    return sizes


def _tree_size(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    total += _tree_size(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return total
    return total


def _papers(layout: Layout, problems: list[str]) -> dict[int, int]:
    counts = {}
    for year in layout.metadata_years():
        path = layout.metadata_file(year)
        try:
            check_schema(path, METADATA_SCHEMA, "metadata")  # footer only; the message says how to recover
            counts[year] = int(pl.scan_parquet(path).select(pl.len()).collect().item())
        except StoreError as exc:  # a torn or foreign file: report it, keep going
            problems.append(str(exc))
    return counts


def _daemon_alive(pid: int) -> bool:
    if not pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a reused pid is not our daemon
        try:
            return b"papersys" in cmdline.read_bytes()
        except OSError:
            return True
    return True


def _daemon(layout: Layout) -> DaemonStatus:
    try:
        info = read_json(layout.daemon_state)
    except PapersysError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return DaemonStatus("stopped")
    state = "running" if _daemon_alive(info["pid"]) else "stale"
    return DaemonStatus(
        state,
        info["pid"],
        info.get("started"),
        dict(info.get("next_runs") or {}),
        list(info.get("running") or []),
        info.get("metrics"),
    )


def _model_status(layout: Layout, model: Any) -> ModelStatus:
    from papersys.embed.coverage import coverage_by_year
    from papersys.embed.gaps import Coverage
    from papersys.search.source import index_state

    try:
        by_year = coverage_by_year(layout, model, persist=False)
    except PapersysError as exc:
        return ModelStatus(model.alias, model.name, model.enabled, problem=str(exc))
    total = sum(by_year.values(), Coverage())
    return ModelStatus(
        model.alias,
        model.name,
        model.enabled,
        papers=total.papers,
        valid=total.valid,
        missing=total.missing,
        stale=total.stale,
        invalid=total.invalid,
        orphans=total.orphans,
        years={year: cov.to_dict() for year, cov in by_year.items()},
        index=index_state(layout, model, total.valid),
    )


def collect_status(config: Config) -> StatusReport:
    started = time.monotonic()
    layout = Layout(config.data_dir)
    problems: list[str] = []
    papers = _papers(layout, problems)
    try:
        state = load_state(layout)
        watermarks = {
            k: {"watermark": cp.watermark.isoformat(), "updated_at": cp.updated_at.isoformat(), "source": cp.source}
            for k, cp in state.checkpoints.items()
        }
        window = state.in_progress
        in_progress = (
            None
            if window is None
            else {
                "set": window.set_key,
                "start": window.start.isoformat(),
                "until": window.until.isoformat(),
                "started_at": window.started_at.isoformat(),
            }
        )
    except PapersysError as exc:
        problems.append(str(exc))
        watermarks, in_progress = {}, None
    last_runs: dict[str, dict[str, Any]] = {}
    for record in read_jobs(layout.jobs_log, tail_bytes=_JOBS_TAIL):
        if isinstance(record.get("job"), str):
            last_runs[record["job"]] = record
    deleted = 0
    if layout.deletions_file.exists():
        try:
            check_schema(layout.deletions_file, DELETION_SCHEMA, "deletions")
            deleted = int(pl.scan_parquet(layout.deletions_file).select(pl.len()).collect().item())
        except StoreError as exc:
            problems.append(str(exc))
    models = tuple(_model_status(layout, m) for m in config.embedding.models)
    for m in models:  # a bad metadata file breaks every model's coverage: it is reported once, above
        if m.problem and m.problem not in problems:
            problems.append(f"model {m.alias}: {m.problem}")
    return StatusReport(
        data_dir=str(layout.root),
        generated_at=utc_stamp(),
        papers=papers,
        total_papers=sum(papers.values()),
        deleted=deleted,
        models=models,
        watermarks=watermarks,
        window_in_progress=in_progress,
        last_runs=last_runs,
        daemon=_daemon(layout),
        disk_bytes=_disk(layout),
        text_index=_text_index(layout, sum(papers.values())),
        freshness=_freshness(layout, datetime.now(UTC), problems),
        audit=_audit(layout, problems),
        problems=tuple(problems),
        seconds=round(time.monotonic() - started, 3),
    )
