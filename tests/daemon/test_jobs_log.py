"""The job history survives torn writes: a torn last line is ignored and the next append is clean."""

from __future__ import annotations

from pathlib import Path

from papersys.store.jobs import append_job, read_jobs


def test_append_and_read(tmp_path: Path) -> None:
    log = tmp_path / "state" / "jobs.jsonl"
    append_job(log, {"job": "ingest", "outcome": "ok"})
    append_job(log, {"job": "embed-autopatch", "outcome": "error", "error": "boom"})
    assert [r["job"] for r in read_jobs(log)] == ["ingest", "embed-autopatch"]


def test_torn_last_line_is_ignored_and_not_glued_to_the_next(tmp_path: Path) -> None:
    log = tmp_path / "jobs.jsonl"
    append_job(log, {"job": "ingest", "n": 1})
    with log.open("a") as fh:
        fh.write('{"job": "ingest", "n": 2, "outc')  # a writer killed mid-line
    assert [r["n"] for r in read_jobs(log)] == [1]
    append_job(log, {"job": "ingest", "n": 3})
    assert [r["n"] for r in read_jobs(log)] == [1, 3]


def test_tail_read_drops_the_partial_first_line(tmp_path: Path) -> None:
    log = tmp_path / "jobs.jsonl"
    for n in range(200):
        append_job(log, {"job": "ingest", "n": n})
    tail = read_jobs(log, tail_bytes=300)
    assert tail and tail[-1]["n"] == 199
    assert len(tail) < 20 and [r["n"] for r in tail] == list(range(200 - len(tail), 200))
    assert read_jobs(tmp_path / "missing.jsonl") == []


def test_tail_cut_exactly_at_a_line_start_keeps_that_line(tmp_path: Path) -> None:
    log = tmp_path / "jobs.jsonl"
    log.write_bytes(b'{"a":1}\n{"b":2}\n')
    assert read_jobs(log, tail_bytes=8) == [{"b": 2}]
    assert read_jobs(log, tail_bytes=7) == []  # the cut falls inside the last line
    assert read_jobs(log, tail_bytes=1 << 20) == [{"a": 1}, {"b": 2}]  # a tail longer than the file
