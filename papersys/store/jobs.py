"""The append-only job history ``state/jobs.jsonl``: one JSON line per run; a torn last line is ignored."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any

from papersys.errors import StoreError
from papersys.store.storage import check_not_vanished, storage_guard


def append_job(path: Path, record: dict[str, Any]) -> None:
    """Append one line with O_APPEND + fsync. If a killed writer left a torn line, start on a fresh line."""
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    check_not_vanished(path)
    with storage_guard(path, "append to"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = 0
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line
            data = line.encode()
            if os.write(fd, data) != len(data):  # a short write: the disk filled up under it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # a short write on a full disk: leave no half line behind
                os.ftruncate(fd, size)
            raise
        finally:
            os.close(fd)


def read_jobs(path: Path, *, tail_bytes: int | None = None) -> list[dict[str, Any]]:
    """Every complete, parsable line (oldest first); with ``tail_bytes``, only the lines in the file's end."""
    try:
        with path.open("rb") as fh:
            if tail_bytes is not None:
                size = fh.seek(0, os.SEEK_END)
                if size > tail_bytes:
                    # start one byte early: if the cut falls on a line start, readline drops only the "\n"
                    fh.seek(size - tail_bytes - 1)
                    fh.readline()  # drop the partial first line
                else:
                    fh.seek(0)
            data = fh.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(path, f"cannot read: {exc.strerror or exc}") from exc
    records = []
    for raw in data.splitlines():
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a torn line from a killed writer
        if isinstance(record, dict):
            records.append(record)
    return records
