"""The storage-fault translation (papersys/store/storage.py): what each library says becomes one errno, one
line in words with a hint, exit status 4; everything that is no storage fault passes unchanged."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
from filelock import Timeout

from papersys.errors import PapersysError, StorageError, UsageError
from papersys.store.storage import ensure_free_space, fault_errno, probe, storage_error, storage_guard


@pytest.mark.parametrize(
    ("exc", "number"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (RuntimeError("parquet: File out of specification: underlying IO error: No space left on device (os error 28)"),
         errno.ENOSPC),  # polars' ComputeError
        (RuntimeError("Failed to open file: Read-only file system (os error 30)"), errno.EROFS),  # tantivy
        (RuntimeError("IOError: [Errno 13] Permission denied"), errno.EACCES),  # pyarrow's text
        (RuntimeError("fwrite failed: No such file or directory"), errno.ENOENT),  # faiss
        (OSError(errno.EDQUOT, "Disk quota exceeded"), errno.EDQUOT),
        (ValueError("schema mismatch"), None),
        (Timeout("x.lock"), None),  # an OSError without errno: a busy lock, not a fault of the disk
    ],
)  # fmt: skip
def test_fault_errno_reads_every_library(exc: BaseException, number: int | None) -> None:
    assert fault_errno(exc) == number


def test_a_cause_is_found_through_the_exception_chain() -> None:
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert fault_errno(outer) == errno.EROFS


@pytest.mark.parametrize(
    ("number", "cause", "hint"),
    [
        (errno.ENOSPC, "the disk is full", "free space on /"),
        (errno.EROFS, "the file system is read-only", "remount / read-write"),
        (errno.EACCES, "permission denied", "give this user write access"),
        (errno.ENOENT, "the directory no longer exists", "restore or recreate the data dir"),
    ],
)
def test_the_message_is_one_line_naming_file_cause_and_hint(number: int, cause: str, hint: str) -> None:
    err = storage_error(Path("/nonexistent/data/metadata/2024.parquet"), OSError(number, "x"))
    assert isinstance(err, StorageError) and err.exit_code == 4
    assert str(err).startswith(f"/nonexistent/data/metadata/2024.parquet: cannot write: {cause} (")
    assert hint in str(err) and "rerun" in str(err) and "\n" not in str(err)


def test_the_guard_translates_faults_and_passes_everything_else(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="the disk is full"), storage_guard(Path("/x/y")):
        raise RuntimeError("No space left on device (os error 28)")
    with pytest.raises(ValueError, match="a bug"), storage_guard(tmp_path):  # keeps its traceback
        raise ValueError("a bug")
    with pytest.raises(UsageError), storage_guard(tmp_path):  # our own errors pass as they are
        raise UsageError("bad")
    with pytest.raises(Timeout), storage_guard(tmp_path):
        raise Timeout("lock")


def test_probe_names_a_vanished_directory(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    shutil.rmtree(gone)
    assert probe(gone / "file.parquet") == errno.ENOENT
    assert probe(tmp_path / "file.parquet") is None  # a roomy, writable directory shows no fault


def test_the_pre_flight_refuses_only_what_cannot_fit(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    ensure_free_space(tmp_path, 1 << 20, margin_mb=1, what="a small write")  # roomy: never refused
    ensure_free_space(tmp_path, 2 * free, margin_mb=-1, what="anything")  # the check is off
    with pytest.raises(StorageError) as caught:
        ensure_free_space(tmp_path, 2 * free, margin_mb=64, what="the merge of 2024")
    message = str(caught.value)
    assert "not enough free space for the merge of 2024" in message and "free_space_margin_mb" in message
    assert isinstance(caught.value, PapersysError) and caught.value.exit_code == 4
