"""Fault points for the reliability tests. At ``crash_point(name)``:

- ``PAPERSYS_CRASH_AT=name:n`` makes the process die (``os._exit``) the n-th time it passes point ``name``;
- ``PAPERSYS_FILL_AT=name:n:FILE`` fills the file system holding FILE, for real, by writing FILE until the
  disk says "No space left on device" (the storage-fault tests then delete FILE to free the space);
- ``PAPERSYS_PAUSE_AT=name:n:FLAG`` creates ``FLAG.reached`` and waits until ``FLAG.go`` exists (a test
  remounts the data dir read-only meanwhile).

Unset (always, outside the reliability tests) a call costs three dict lookups."""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from pathlib import Path

ENV = "PAPERSYS_CRASH_AT"
FILL_ENV = "PAPERSYS_FILL_AT"
PAUSE_ENV = "PAPERSYS_PAUSE_AT"
_hits: Counter[tuple[str, str]] = Counter()


def crash_point(name: str) -> None:
    environ = os.environ
    if not (environ.get(ENV) or environ.get(FILL_ENV) or environ.get(PAUSE_ENV)):
        return
    if _due(ENV, name) is not None:
        os._exit(137)  # what SIGKILL looks like to the parent: no cleanup, no flush
    fill = _due(FILL_ENV, name)
    if fill:
        fill_file_system(Path(fill))
    pause = _due(PAUSE_ENV, name)
    if pause:
        Path(f"{pause}.reached").touch()
        while not Path(f"{pause}.go").exists():
            time.sleep(0.01)


def _due(env: str, name: str) -> str | None:
    """The spec's argument ("" when it has none) when ``name`` is due under ``env`` now, else None."""
    spec = os.environ.get(env)
    if not spec:
        return None
    target, _, rest = spec.partition(":")
    if target != name:
        return None
    count, _, argument = rest.partition(":")
    _hits[(env, name)] += 1
    return argument if _hits[(env, name)] == int(count or 1) else None


def fill_file_system(path: Path) -> int:
    """Append to ``path`` until its file system is full; returns the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    n = os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += n
                if n < size:
                    break
    finally:
        os.close(fd)
    return written
