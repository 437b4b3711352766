"""Crash points for the kill tests: ``PAPERSYS_CRASH_AT=name:n`` makes the process die (``os._exit``) the
n-th time it passes point ``name``. Unset (always, outside the reliability tests) it costs one dict lookup."""

from __future__ import annotations

import os
from collections import Counter

ENV = "PAPERSYS_CRASH_AT"
_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(count or 1):
        os._exit(137)  # what SIGKILL looks like to the parent: no cleanup, no flush
