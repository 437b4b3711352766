"""snapshot: bulk-load a synthetic Kaggle-style arXiv snapshot (~1.5 KB/line) into a fresh store; wall, records/s, RSS.

The file is generated on the fly into a temp dir (realistic id mix 1991-2026, multi-version papers,
unique abstracts) and loaded by ``python -m papersys ingest --snapshot`` in a child process, whose peak
RSS comes from ``getrusage(RUSAGE_CHILDREN)``. Goals on the 2-core machine: < 5 min, < 2 GB for 2.9 M lines.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[2]

# papers per first-submission year (thousands), roughly arXiv's real growth; scaled to --lines
YEAR_WEIGHTS = {
    1991: 0.3, 1992: 3.2, 1993: 6.7, 1994: 8.9, 1995: 10.4, 1996: 13.1, 1997: 15.3, 1998: 18.5, 1999: 20.5,
    2000: 22.6, 2001: 24.8, 2002: 26.9, 2003: 28.4, 2004: 31.6, 2005: 34.2, 2006: 36.1, 2007: 39.7,
    2008: 46.3, 2009: 52.3, 2010: 56.5, 2011: 61.4, 2012: 67.3, 2013: 73.9, 2014: 78.6, 2015: 83.5,
    2016: 98.9, 2017: 115.8, 2018: 132.5, 2019: 150.6, 2020: 177.4, 2021: 180.0, 2022: 185.7, 2023: 208.4,
    2024: 240.0, 2025: 280.0, 2026: 230.0,
}  # fmt: skip
OLD_ARCHIVES = ["astro-ph", "cond-mat", "gr-qc", "hep-ph", "hep-th", "math", "nucl-th", "physics", "quant-ph",
                "cs", "solv-int", "chao-dyn", "alg-geom", "q-alg", "funct-an"]  # fmt: skip
CATEGORIES = ["cs.LG", "cs.CV", "cs.CL", "cs.AI", "math.AG", "math.PR", "hep-th", "hep-ph", "quant-ph",
              "astro-ph.GA", "astro-ph.CO", "cond-mat.str-el", "cond-mat.mtrl-sci", "stat.ML", "math-ph",
              "math.MP", "gr-qc", "physics.optics", "eess.SP", "q-bio.NC", "econ.EM", "q-fin.ST",
              "nlin.SI"]  # fmt: skip
NEWEST = (2026, 11, 14)  # the snapshot's newest update_date
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
SURNAMES = ["Smith", "Müller", "Wang", "Zhang", "García", "Kowalski", "Nguyen", "Balázs", "Ivanov", "Rossi",
            "Tanaka", "O'Brien", "Dubois", "Søren", "Ødegård", "Li", "Kim", "Novák", "Öztürk", "Hernández"]  # fmt: skip


def _corpus(rng: random.Random, words: int) -> tuple[str, list[int]]:
    """A long JSON-escaped text of random words with arXiv-style hard line breaks; word start offsets."""
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 11))) for _ in range(8000)]
    vocab += ["$\\\\alpha$", "$O(n^2)$", "Schrödinger", "naïve", "\u2013", "≈"]
    parts, starts, pos, col = [], [], 0, 0
    for _ in range(words):
        word = rng.choice(vocab)
        sep = "\\n" if col > 75 else " "
        col = 0 if sep != " " else col + len(word) + 1
        starts.append(pos)
        parts.append(word + sep)
        pos += len(word) + len(sep)
    return "".join(parts), starts


def _slice(rng: random.Random, corpus: str, starts: list[int], length: int) -> str:
    i = rng.randrange(len(starts) - 400)
    begin = starts[i]
    end = starts[min(bisect.bisect_left(starts, begin + length), len(starts) - 1)]
    return corpus[begin:end].rstrip(" ").removesuffix("\\n")


def _rfc(day: int, month: int, year: int, rng: random.Random) -> str:
    return (
        f"{rng.choice(DAYS)}, {day} {MONTHS[month - 1]} {year} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00 GMT"
    )


def _ids(lines: int, rng: random.Random) -> list[tuple[str, int, int]]:
    """(id, year, month) in the snapshot's order: new-style ids sorted, then old-style ones by archive."""
    total = sum(YEAR_WEIGHTS.values())
    counts = {year: int(lines * weight / total) for year, weight in YEAR_WEIGHTS.items()}
    counts[2026] += lines - sum(counts.values())  # exactly ``lines`` in all
    new, old = [], []
    for year, count in counts.items():
        per_month = [count // 12 + (1 if m < count % 12 else 0) for m in range(12)]
        for month, n in enumerate(per_month, start=1):
            yymm = f"{year % 100:02d}{month:02d}"
            if year < 2007 or (year == 2007 and month < 4):
                for k in range(n):
                    archive = OLD_ARCHIVES[k % len(OLD_ARCHIVES)]
                    old.append((f"{archive}/{yymm}{k // len(OLD_ARCHIVES) + 1:03d}", year, month))
            else:
                width = 4 if year < 2015 else 5
                new += [(f"{yymm}.{k + 1:0{width}d}", year, month) for k in range(n)]
    old.sort()
    return new + old


def generate(path: Path, lines: int, seed: int = 7) -> int:
    """Write ``lines`` synthetic snapshot lines to ``path`` (``.gz`` compresses); returns the byte size."""
    rng = random.Random(seed)
    corpus, starts = _corpus(rng, 400_000)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        _write(out, _ids(lines, rng), rng, corpus, starts)
    return path.stat().st_size


def _write(out: TextIO, ids: list[tuple[str, int, int]], rng: random.Random, corpus: str, starts: list[int]) -> None:
    dumps = json.dumps
    buffer: list[str] = []
    for arxiv_id, year, month in ids:
        n_versions = rng.choices((1, 2, 3, 4, 6), weights=(60, 25, 10, 4, 1))[0]
        y, m, d = year, month, rng.randint(1, 28)
        versions = []
        for v in range(1, n_versions + 1):
            versions.append(f'{{"version":"v{v}","created":"{_rfc(d, m, y, rng)}"}}')
            m += rng.randint(0, 5)  # the next version (and the last update) some months later
            y, m = y + (m - 1) // 12, (m - 1) % 12 + 1
            y, m, d = min((y, m, d), NEWEST)
        stamp = (y, m, d) if rng.random() < 0.8 else (rng.randint(y, NEWEST[0]), rng.randint(1, 12), d)
        update = "{}-{:02d}-{:02d}".format(*min(stamp, NEWEST))
        authors = [
            (rng.choice(SURNAMES), f"{rng.choice('ABCDEFGHJKLMNPRST')}. {rng.choice('ABCDEFGH')}.")
            for _ in range(rng.choice((1, 2, 3, 4, 5, 7, 12)))
        ]
        cats = " ".join(dict.fromkeys(rng.choice(CATEGORIES) for _ in range(rng.choice((1, 1, 2, 3)))))
        title = _slice(rng, corpus, starts, rng.randint(40, 140))
        abstract = _slice(rng, corpus, starts, rng.randint(420, 1250))
        comments = f'"{rng.randint(4, 60)} pages, {rng.randint(1, 20)} figures"' if rng.random() < 0.7 else "null"
        doi = f'"10.{rng.randint(1000, 9999)}/j.{rng.randint(10**5, 10**6)}"' if rng.random() < 0.5 else "null"
        jref = (
            f'"Phys. Rev. D {rng.randint(1, 110)}, {rng.randint(1, 99999)} ({year + 1})"'
            if rng.random() < 0.4
            else "null"
        )
        buffer.append(
            f'{{"id":"{arxiv_id}","submitter":{dumps(authors[0][1] + " " + authors[0][0])},'
            f'"authors":{dumps(", ".join(f"{f} {k}" for k, f in authors))},"title":"{title}",'
            f'"comments":{comments},"journal-ref":{jref},"doi":{doi},"report-no":null,"categories":"{cats}",'
            f'"license":"http://arxiv.org/licenses/nonexclusive-distrib/1.0/","abstract":"  {abstract}\\n",'
            f'"versions":[{",".join(versions)}],"update_date":"{update}",'
            f'"authors_parsed":{dumps([[k, f, ""] for k, f in authors], ensure_ascii=False)}}}\n'
        )
        if len(buffer) >= 10_000:
            out.write("".join(buffer))
            buffer.clear()
    out.write("".join(buffer))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lines", type=int, default=2_900_000, help="snapshot lines to generate (default 2.9 M)")
    parser.add_argument("--workdir", type=Path, help="where to put the temp dir (default: system temp)")
    parser.add_argument("--gz", action="store_true", help="generate and load a .gz file instead")
    parser.add_argument("--keep", action="store_true", help="keep the generated file and store")


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="papersys-bench-snapshot-", dir=args.workdir))
    try:
        source = work / ("snapshot.json.gz" if args.gz else "snapshot.json")
        t0 = time.perf_counter()
        size = generate(source, args.lines)
        gen_s = time.perf_counter() - t0
        print(f"generated {args.lines:,} lines, {size / 1e9:.2f} GB in {gen_s:.0f} s", file=sys.stderr)
        cmd = [
            sys.executable,
            "-m",
            "papersys",
            "--data-dir",
            str(work / "data"),
            "ingest",
            "--snapshot",
            str(source),
            "--json",
        ]
        env = {k: v for k, v in os.environ.items() if k != "PAPERSYS_CONFIG"}  # embedded defaults
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode:
            raise SystemExit(f"load failed ({proc.returncode}): {proc.stderr[-2000:]}")
        report = json.loads(proc.stdout)
        store_bytes = sum(p.stat().st_size for p in (work / "data" / "metadata").glob("*.parquet"))
        return {
            "lines": args.lines,
            "file_gb": round(size / 1e9, 3),
            "compression": "gzip" if args.gz else "none",
            "generate_s": round(gen_s, 1),
            "wall_s": round(wall, 1),
            "records_per_s": round(report["records"] / wall),
            "peak_rss_mb": round(peak_kb / 1024),
            "store_gb": round(store_bytes / 1e9, 3),
            "phases_s": report.get("phases_s"),
            "report": {k: report[k] for k in ("lines", "records", "kept", "bad", "new", "updated", "seconds")},
            "goals": {"wall_lt_300s": wall < 300, "rss_lt_2gb": peak_kb < 2 * 1024 * 1024},
        }
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
