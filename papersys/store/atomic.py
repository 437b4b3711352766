"""Atomic file writes (temp file in the same directory, fsync, ``os.replace``) and crash-tolerant reads."""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import polars as pl

from papersys.errors import StoreError
from papersys.faults import crash_point
from papersys.store.storage import check_not_vanished, diagnose, storage_error, storage_guard

Compression = Literal["zstd", "lz4", "snappy", "uncompressed"]
_TEMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory (so that a rename or an unlink in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete ``path`` (if there) durably; StorageError when it cannot be deleted."""
    with storage_guard(path, "delete"):
        path.unlink(missing_ok=True)
        if path.parent.is_dir():
            fsync_path(path.parent)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename it over ``path``.

    Whatever fails (the block, the fsync, the rename), the temp file is removed (a full disk must not stay
    full of our temp files) and ``path`` keeps its old version; a storage fault (the disk is full, the file
    system read-only, the directory gone), whichever library raised it, becomes a StorageError naming
    ``path``."""
    tmp = _temp_path(path)
    check_not_vanished(path)
    with storage_guard(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            fsync_path(tmp)
            crash_point("atomic.before_replace")  # the temp file is complete, the target still old
            os.replace(tmp, path)
            fsync_path(path.parent)
        except BaseException as exc:
            number = diagnose(exc, tmp)  # now, while the failed temp file still holds its space
            with contextlib.suppress(OSError):  # on a read-only or vanished directory it may not go
                tmp.unlink(missing_ok=True)
            if number is not None:
                raise storage_error(path, exc, "write", number) from exc
            raise


def write_parquet(
    frame: pl.DataFrame,
    path: Path,
    *,
    compression: Compression = "zstd",
    row_group_size: int | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``frame`` to ``path`` atomically (zstd by default, with statistics; polars' row groups unless
    ``row_group_size`` is given; ``metadata`` as the file's key-value metadata)."""
    with atomic_path(path) as tmp:
        frame.write_parquet(
            tmp, compression=compression, statistics=True, row_group_size=row_group_size, metadata=metadata
        )


def write_bytes(data: bytes, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(obj: Any, path: Path) -> None:
    write_bytes((json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode(), path)


def read_json(path: Path) -> Any | None:
    """The parsed JSON at ``path``, or None when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(
            path, f"cannot read: {exc.strerror or exc}", "check its permissions, or move it aside if it is not a file"
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(
            path,
            f"not valid JSON ({exc.msg} at line {exc.lineno})",
            "restore it from a backup or delete it to start that state afresh",
        ) from exc


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp_files(directory: Path) -> int:
    """Remove temp files left in ``directory`` by writers that died mid-write; returns how many."""
    if not directory.is_dir():
        return 0
    removed = 0
    for entry in directory.iterdir():
        match = _TEMP.match(entry.name)
        if match and not pid_alive(int(match.group(1))):
            with storage_guard(entry, "delete"):
                entry.unlink(missing_ok=True)
            removed += 1
    return removed


def file_stat(path: Path) -> list[int] | None:
    """Size, modification time and inode of ``path`` (None when it is missing): a cheap signature of a store
    file, which atomic replacement always changes."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]
