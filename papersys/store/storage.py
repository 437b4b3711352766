"""Storage faults in words: one place that turns whatever a write raised (an OSError, a polars
``ComputeError`` wrapping "No space left on device (os error 28)", a pyarrow, tantivy or faiss error) into a
one-line :class:`StorageError` that names the file, the cause and what to do; and the pre-flight check that
refuses a write job early when its output clearly cannot fit on the disk.

Every write adapter of the store runs inside :func:`storage_guard` (``store/atomic.py`` does it for every
atomic write, so most callers get it for free)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from papersys.errors import PapersysError, StorageError, StoreError

# the words of each errno, and what the user should do about it ({mount}: the file system holding the file)
_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free space on {mount} and rerun; nothing committed was lost"),
    errno.EDQUOT: ("the disk quota is exhausted", "raise the quota or free space on {mount} and rerun"),
    errno.EROFS: ("the file system is read-only", "remount {mount} read-write and rerun"),
    errno.EACCES: ("permission denied", "give this user write access to {parent} and rerun"),
    errno.EPERM: ("permission denied", "give this user write access to {parent} and rerun"),
    errno.ENOENT: ("the directory no longer exists", "restore or recreate the data dir and rerun"),
    errno.ENOTDIR: ("a directory on its path is not a directory", "move the file in the way aside and rerun"),
    errno.EIO: ("an input/output error of the disk", "check the disk (dmesg, SMART) and rerun"),
    errno.EFBIG: ("the file is too large for its file system", "move the data dir to another file system"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n) and rerun"),
}
# the texts libraries print instead of an errno (Rust's io::Error, C's strerror, pyarrow's messages)
_TEXTS: tuple[tuple[str, int], ...] = (
    ("no space left on device", errno.ENOSPC),
    ("disk quota exceeded", errno.EDQUOT),
    ("read-only file system", errno.EROFS),
    ("permission denied", errno.EACCES),
    ("operation not permitted", errno.EPERM),
    ("no such file or directory", errno.ENOENT),
    ("not a directory", errno.ENOTDIR),
    ("input/output error", errno.EIO),
)
_OS_ERROR = re.compile(r"os error (\d+)")


def fault_errno(exc: BaseException) -> int | None:
    """The errno behind ``exc`` (or one of its causes), whoever raised it; None when it is no storage fault."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _CAUSES:
            return current.errno
        text = str(current)
        match = _OS_ERROR.search(text)
        if match and int(match.group(1)) in _CAUSES:
            return int(match.group(1))
        lowered = text.lower()
        for words, number in _TEXTS:
            if words in lowered:
                return number
        if isinstance(current, OSError) and current.errno is not None:
            return current.errno
        current = current.__cause__ or current.__context__
    return None


FULL_BELOW = 1 << 20  # a write that failed with less than this free (for this user) failed for want of space


def probe(path: Path) -> int | None:
    """The storage fault the file system of ``path`` shows now (its directory gone, read-only, full), or
    None. For libraries whose error lost the errno (polars: "Invalid thrift: transport error")."""
    directory = path if path.is_dir() else path.parent
    if not directory.is_dir():
        return errno.ENOENT
    try:
        st = os.statvfs(directory)
    except OSError as exc:
        return exc.errno
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    return errno.ENOSPC if free < FULL_BELOW else None


def diagnose(exc: BaseException, path: Path) -> int | None:
    """The errno of a failed write near ``path``: the error's own, else what the file system shows. None for
    our own errors, interrupts and failures the storage does not explain."""
    if not isinstance(exc, Exception) or isinstance(exc, PapersysError):
        return None
    number = fault_errno(exc)
    if number is not None or isinstance(exc, TimeoutError):  # a busy lock is no fault of the disk
        return number
    return probe(path)


def existing_ancestor(path: Path) -> Path:
    """``path`` (absolute) if it exists, else its nearest existing ancestor."""
    found = Path(os.path.abspath(path))
    while not found.exists() and found != found.parent:
        found = found.parent
    return found


def mount_point(path: Path) -> Path:
    """The mount point of the file system that holds ``path`` (or would hold it)."""
    found = existing_ancestor(path)
    while not os.path.ismount(found) and found != found.parent:
        found = found.parent
    return found


def storage_error(path: Path | str, exc: BaseException, action: str = "write", number: int | None = None) -> StoreError:
    """The one-line error for ``exc`` met while trying to ``action`` ``path``: a StorageError (cause in words
    and a hint) when it is a storage fault (``number``, else the errno ``exc`` carries), else a plain
    StoreError carrying the library's first line."""
    path = Path(path)
    number = number if number is not None else fault_errno(exc)
    if number in _CAUSES:
        cause, hint = _CAUSES[number]
        hint = hint.format(mount=mount_point(path), parent=path.parent)
        return StorageError(path, f"cannot {action}: {cause}", hint)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if number is not None:  # an errno without words of ours: still the disk's fault
        return StorageError(path, f"cannot {action}: {os.strerror(number)}", "check the disk and rerun")
    return StoreError(path, f"cannot {action}: {type(exc).__name__}: {first}")


@contextlib.contextmanager
def storage_guard(path: Path | str, action: str = "write") -> Iterator[None]:
    """Turn a storage fault raised in the block into a StorageError naming ``path``. Our own errors pass
    unchanged; so does any other error (a bug must keep its traceback, a lock's Timeout its meaning)."""
    try:
        yield
    except PapersysError:
        raise
    except Exception as exc:
        number = diagnose(exc, Path(path))
        if number is not None:
            raise storage_error(path, exc, action, number) from exc
        raise


# data dirs that a running job (or a daemon) uses: while registered, a vanished one is an error, never
# silently recreated by the next write's mkdir (which would grow a second, partial store)
_in_use: Counter[Path] = Counter()
_in_use_lock = threading.Lock()


@contextlib.contextmanager
def data_dir_in_use(root: Path) -> Iterator[None]:
    """While the block runs, writes under ``root`` fail (StorageError) once ``root`` has vanished."""
    root = Path(os.path.abspath(root))
    with _in_use_lock:
        _in_use[root] += 1
    try:
        yield
    finally:
        with _in_use_lock:
            _in_use[root] -= 1
            if _in_use[root] <= 0:
                del _in_use[root]


def check_not_vanished(path: Path) -> None:
    """StorageError when ``path`` lies in a data dir in use that no longer exists (removed, unmounted)."""
    if not _in_use:
        return
    probe = Path(os.path.abspath(path))
    with _in_use_lock:
        roots = [root for root in _in_use if root == probe or root in probe.parents]
    for root in roots:
        if not root.is_dir():
            raise StorageError(
                root,
                "cannot write: the data dir no longer exists (removed or unmounted while papersys ran)",
                "restore it (or mount it again) and rerun; to start an empty store, create the directory",
            )


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``."""
    return shutil.disk_usage(existing_ancestor(path)).free


def ensure_free_space(path: Path, needed: int, *, margin_mb: float, what: str) -> None:
    """Refuse (StorageError) when the file system of ``path`` has less than ``needed`` bytes plus the
    configured margin free: ``what`` (e.g. "the merge of 2024") clearly cannot fit."""
    if margin_mb < 0:
        return  # the check is off
    want = needed + int(margin_mb * 2**20)
    have = free_bytes(path)
    if have < want:
        raise StorageError(
            path,
            f"not enough free space for {what}: {_mib(have)} free, needs about {_mib(needed)}"
            f" plus the {margin_mb:g} MiB margin",
            f"free space on {mount_point(path)} and rerun (or lower [store] free_space_margin_mb)",
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
