"""What a snapshot load decides about the harvest watermarks (pure): the keys it covers, the ones it sets, and the
action the report names for each. A key that had a watermark keeps it; the OAI harvest goes on from there."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from papersys.store.state import ALL_SETS, set_key


def watermark_keys(sets: Sequence[str]) -> list[str]:
    """One key per configured set, or ``all`` when the load is not restricted to sets."""
    return [set_key(s) for s in sets] or [ALL_SETS]


def keys_to_set(
    keys: Sequence[str],
    before: Mapping[str, str | None],
    current: Mapping[str, date | None],
    newest: date | None,
) -> list[str]:
    """The keys the load sets to ``newest``: none when the merge began (``before``) and none now."""
    if newest is None:  # no valid line: nothing to set a watermark to
        return []
    return [key for key in dict.fromkeys(keys) if before.get(key) is None and current.get(key) is None]


def watermark_plan(
    keys: Sequence[str], before: Mapping[str, date | None], after: Mapping[str, date | None]
) -> dict[str, str]:
    """Per watermark key: ``set`` (it had none), ``kept`` (it had one: OAI goes on from it) or ``none``."""
    actions = {}
    for key in keys:
        if before.get(key) is not None:
            actions[key] = "kept"
        elif after.get(key) is not None:
            actions[key] = "set"
        else:
            actions[key] = "none"
    return actions
