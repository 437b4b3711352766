"""Small Kaggle-style arXiv snapshots written by the tests: old/new ids, multi-version papers, Unicode, bad lines."""

from __future__ import annotations

import gzip
import json
import zipfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import zstandard

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TITLES = (
    "Quantum groups and\n  integrable systems",
    "Schrödinger operators with  random potentials",
    "Erdős–Rényi graphs: a naïve approach",  # noqa: RUF001
    "Gauge theory on the lattice\nat strong coupling",
    "量子 chaos in billiards",
    "The $\\alpha$-stable limit of random walks",
)
_SURNAMES = (("Balázs", "C."), ("Gödel", "Kurt"), ("O'Brien", "J.-P."), ("King", "Martin Luther"), ("李", "娜"))
_CATEGORIES = ("hep-th", "cs.LG stat.ML", "math-ph math.MP", "astro-ph.CO", "cond-mat.mtrl-sci", "math.AG cs.CV")
_OLD_ARCHIVES = ("hep-th", "solv-int", "math", "cond-mat", "astro-ph", "chao-dyn", "alg-geom", "cmp-lg")


def rfc2822(day: date) -> str:
    return f"{_DAYS[day.weekday()]}, {day.day} {_MONTHS[day.month - 1]} {day.year} 10:00:00 GMT"


def kaggle_record(
    arxiv_id: str, first: date, i: int = 0, *, versions: int = 1, update: date | None = None
) -> dict[str, Any]:
    """One line of the snapshot as Kaggle writes it."""
    dates = [date(first.year + (first.month + 2 * v - 1) // 12, (first.month + 2 * v - 1) % 12 + 1, first.day)
             for v in range(versions)]  # fmt: skip
    authors = [_SURNAMES[(i + k) % len(_SURNAMES)] for k in range(1 + i % 4)]
    return {
        "id": arxiv_id,
        "submitter": authors[0][1] + " " + authors[0][0],
        "authors": ", ".join(f"{f} {k}" for k, f in authors),
        "title": f"{_TITLES[i % len(_TITLES)]} ({i})",
        "comments": f"{10 + i % 30} pages" if i % 3 else None,
        "journal-ref": f"Phys. Rev. D {i % 99}, {i} ({first.year + 1})" if i % 4 == 0 else None,
        "doi": f"10.1103/PhysRevD.{i}" if i % 5 == 0 else None,
        "report-no": None,
        "categories": _CATEGORIES[i % len(_CATEGORIES)],
        "license": "http://arxiv.org/licenses/nonexclusive-distrib/1.0/" if i % 2 else None,
        "abstract": f"  We study   the model number {i}.\nIts spectrum ≈ {i}\n  is computed.\n",
        "versions": [{"version": f"v{v + 1}", "created": rfc2822(d)} for v, d in enumerate(dates)],
        "update_date": (update or dates[-1]).isoformat(),
        "authors_parsed": [[k, f, "Jr." if f == "Martin Luther" else ""] for k, f in authors],
    }


@dataclass
class Snapshot:
    """What a test snapshot holds, so tests can assert the store exactly."""

    path: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # the winning line per (version-less) id
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    lines: int = 0
    newest: date | None = None


def build_snapshot(path: Path) -> Snapshot:
    """A few hundred lines: new and old ids over 1991-2025, 1-3 versions, Unicode, bad and blank lines, a dup."""
    out: list[str] = []
    snap = Snapshot(path)

    def good(record: dict[str, Any]) -> None:
        out.append(json.dumps(record, ensure_ascii=len(out) % 2 == 0))  # both escaped and raw UTF-8
        key = record["id"].split("v")[0] if record["id"][0].isdigit() else record["id"]
        held = snap.records.get(key)
        if held is None or record["update_date"] >= held["update_date"]:  # newest wins; ties: the later line
            snap.records[key] = record

    def bad(raw: str, reason: str) -> None:
        out.append(raw)
        snap.bad.append((len(out), reason))

    good(kaggle_record("2301.00001", date(2023, 1, 2), 4, update=date(2023, 1, 2)))  # superseded below
    good(kaggle_record("2302.00002", date(2023, 2, 2), 6, versions=2, update=date(2024, 5, 5)))  # wins over below
    for i in range(180):  # new-style ids, 2007-04 .. 2025
        year = 2007 + i % 19
        month = 4 + i % 9 if year == 2007 else 1 + i % 12
        number = f"{i + 1:04d}" if year < 2015 else f"{i + 1:05d}"
        good(
            kaggle_record(f"{year % 100:02d}{month:02d}.{number}", date(year, month, 1 + i % 28), i, versions=1 + i % 3)
        )
        if i == 40:
            bad('{"id": "0801.9999", "title": "cut off', "invalid JSON")
        if i == 90:
            out.append("")  # a blank line is skipped, not bad
    for i in range(100):  # old-style ids, 1991-2007
        year = 1991 + i % 17
        archive = _OLD_ARCHIVES[i % len(_OLD_ARCHIVES)]
        arxiv_id = f"{archive}/{year % 100:02d}{1 + i % 12:02d}{i + 1:03d}"
        good(kaggle_record(arxiv_id, date(year, 1 + i % 12, 1 + i % 28), 1000 + i, versions=1 + i % 2))
    bad(json.dumps({**kaggle_record("0704.0999", date(2007, 4, 2)), "title": "  "}), "missing title")
    bad(json.dumps({**kaggle_record("0704.0998", date(2007, 4, 2)), "id": None}), "missing id")
    bad(json.dumps(kaggle_record("not-an-id", date(2007, 4, 2))), "invalid id 'not-an-id'")
    bad(json.dumps({**kaggle_record("0704.0997", date(2007, 4, 2)), "versions": []}), "no versions")
    bad("[]", "not a JSON object")
    # an id given with a version suffix; later duplicate lines, one newer and one older than the first
    good(kaggle_record("2301.00777v2", date(2023, 1, 5), 7, versions=2))
    good(kaggle_record("2301.00001", date(2023, 1, 2), 5, versions=3, update=date(2025, 6, 30)))
    good(kaggle_record("2302.00002", date(2023, 2, 2), 8, update=date(2023, 2, 2)))
    out.append("")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    snap.lines = len(out)
    snap.newest = max(date.fromisoformat(r["update_date"]) for r in snap.records.values())
    return snap


def bulk_snapshot(path: Path, count: int) -> None:
    """``count`` small valid lines over 2007-2025, in id order like the real file (runs long enough to kill)."""
    per_year = -(-count // 19)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            year, k = 2007 + i // per_year, i % per_year
            month = 4 + k % 9 if year == 2007 else 1 + k % 12
            record = kaggle_record(
                f"{year % 100:02d}{month:02d}.{k + 1:05d}", date(year, month, 1 + k % 28), i, versions=1 + i % 3
            )
            handle.write(json.dumps(record) + "\n")


def compress(path: Path, kind: str) -> Path:
    """A ``.gz``, ``.zst`` or ``.zip`` copy of ``path`` (zstd written as two frames, as concatenated files are)."""
    data = path.read_bytes()
    if kind == "gz":
        target = path.with_name(path.name + ".gz")
        target.write_bytes(gzip.compress(data))
    elif kind == "zst":
        target = path.with_name(path.name + ".zst")
        half = data.index(b"\n", len(data) // 2) + 1
        cctx = zstandard.ZstdCompressor(write_checksum=True)
        target.write_bytes(cctx.compress(data[:half]) + cctx.compress(data[half:]))
    elif kind == "zip":
        target = path.with_name(path.stem + ".zip")
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, arcname=path.name)
    else:
        raise ValueError(kind)
    return target
