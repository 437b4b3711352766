"""Pre-flight checks: a data directory that cannot be used, or a store file that does not open, stops a run
before it writes anything (rather than after an hour of harvesting, or half-way through a merge). Also the
sweep of temp files that killed runs left in ``state/``."""

from __future__ import annotations

import os
from pathlib import Path

from papersys.errors import StorageError, StoreError
from papersys.store.atomic import sweep_temp_files
from papersys.store.layout import Layout
from papersys.store.metadata import DELETION_SCHEMA, METADATA_SCHEMA, check_schema
from papersys.store.storage import existing_ancestor, mount_point

_POINT_AT_DIR = "point data_dir (or --data-dir) at a directory"
_PERMISSIONS = "fix its permissions, or run papersys as the user that owns it"


def check_data_dir(root: Path, *, write: bool) -> None:
    """Raise StoreError unless ``root`` is (or can become) a directory this process may read (and write).

    A missing data dir is fine (a first run creates it) as long as its nearest existing ancestor is a
    directory it could be created in.
    """
    if not root.exists():
        ancestor = existing_ancestor(root.parent)
        if not ancestor.is_dir():
            raise StoreError(root, f"data_dir cannot be created: {ancestor} is not a directory", _POINT_AT_DIR)
        if write and not os.access(ancestor, os.W_OK | os.X_OK):
            raise StoreError(root, f"data_dir cannot be created: {ancestor} is not writable", _PERMISSIONS)
        return
    if not root.is_dir():
        raise StoreError(root, "data_dir is not a directory", _POINT_AT_DIR)
    _check_access(root, "data_dir", write)
    for sub in Layout(root).top_dirs:
        if sub.exists() and not sub.is_dir():
            raise StoreError(sub, "is not a directory", "move it aside: papersys keeps its files in this directory")
        if sub.is_dir():
            _check_access(sub, "directory", write)


def _check_access(path: Path, what: str, write: bool) -> None:
    mode = os.R_OK | os.X_OK | (os.W_OK if write else 0)
    if write and os.statvfs(path).f_flag & os.ST_RDONLY:
        raise StorageError(
            path, "cannot write: the file system is read-only", f"remount {mount_point(path)} read-write and rerun"
        )
    if not os.access(path, mode):
        needed = "readable and writable" if write else "readable"
        raise StoreError(path, f"{what} is not {needed} by this user (permission denied)", _PERMISSIONS)


def verify_metadata_store(layout: Layout, *, deletions: bool = True) -> None:
    """Every metadata year file (and the tombstone file, which only metadata writers read) opens with the
    exact schema. Parquet footers only: milliseconds for the whole store, but damage inside a file whose
    footer survived is found later, by the read itself. Raises the StoreError naming the first bad file."""
    for year in layout.metadata_years():
        check_schema(layout.metadata_file(year), METADATA_SCHEMA, "metadata")
    if deletions and layout.deletions_file.exists():
        check_schema(layout.deletions_file, DELETION_SCHEMA, "deletions")


def sweep_state(layout: Layout) -> int:
    """Remove temp files that killed writers left in ``state/`` (and its subdirectories) and ``.locks/``.

    The store directories are swept by their own writers; these hold small JSON files that nothing else
    cleans. Only temp files of dead processes are removed, so a concurrent writer is never disturbed.
    """
    removed = 0
    for directory in (layout.state_dir, layout.locks_dir):
        removed += sweep_temp_files(directory)
        if directory.is_dir():
            removed += sum(sweep_temp_files(sub) for sub in directory.iterdir() if sub.is_dir())
    return removed
