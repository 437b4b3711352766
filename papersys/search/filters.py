"""Query filters: categories (any of) and a first-version date range, checked, then turned into index rows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from papersys.errors import UsageError

if TYPE_CHECKING:
    from papersys.search.vectors import Rows, VectorIndex

# an arXiv category ("cs.LG", "hep-th", "math-ph", "cond-mat.stat-mech", "physics.acc-ph") or an archive
# ("cs", "math", "astro-ph"); an archive matches each of its categories
_CATEGORY = re.compile(r"^[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z]+(?:-[a-z]+)?)?$")
EPOCH = date(1970, 1, 1)
MAX_K = 1000


def check_category(category: str) -> str:
    if not _CATEGORY.match(category):
        raise UsageError(f"{category!r} is not an arXiv category (like cs.LG, hep-th, math.AG) or archive (like cs)")
    return category


@dataclass(frozen=True)
class Filters:
    categories: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    @classmethod
    def of(
        cls, categories: Sequence[str] = (), since: date | str | None = None, until: date | str | None = None
    ) -> Filters:
        """Checked filters; UsageError naming the first bad value."""
        cats = tuple(dict.fromkeys(check_category(c.strip()) for c in categories))
        start, end = _date("since", since), _date("until", until)
        if start and end and start > end:
            raise UsageError(f"--since {start} is after --until {end}")
        return cls(cats, start, end)

    @property
    def active(self) -> bool:
        return bool(self.categories or self.since or self.until)

    def to_dict(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    def matches(self, categories: Sequence[str], created: date | None) -> bool:
        """The same test on one paper's metadata (for papers looked up outside the index)."""
        if self.categories and not any(_covers(want, have) for want in self.categories for have in categories):
            return False
        if self.since and (created is None or created < self.since):
            return False
        return not (self.until and (created is None or created > self.until))

    def rows(self, index: VectorIndex) -> Rows | None:
        """The sorted rows of ``index`` that pass (dead ones included); None when nothing is filtered."""
        if not self.active:
            return None
        mask = np.ones(index.manifest.rows, dtype=bool)
        if self.since or self.until:
            created = np.asarray(index.columns["created"])
            if self.since:
                mask &= created >= (self.since - EPOCH).days
            if self.until:
                mask &= created <= (self.until - EPOCH).days
        if self.categories:
            mask &= self._category_mask(index)
        return np.flatnonzero(mask).astype(np.int64)

    def _category_mask(self, index: VectorIndex) -> np.ndarray[Any, np.dtype[np.bool_]]:
        vocabulary = index.manifest.categories
        codes = [i for i, have in enumerate(vocabulary) if any(_covers(want, have) for want in self.categories)]
        mask = np.zeros(index.manifest.rows, dtype=bool)
        if not codes:
            return mask
        positions = np.flatnonzero(np.isin(np.asarray(index.columns["cats"]), np.asarray(codes, dtype=np.uint16)))
        rows = np.searchsorted(index.category_offsets, positions, side="right") - 1
        mask[rows] = True
        return mask


def _covers(wanted: str, category: str) -> bool:
    return category == wanted or ("." not in wanted and category.startswith(wanted + "."))


def _date(name: str, value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--{name} {value!r} is not a date of the form YYYY-MM-DD") from None


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise UsageError(f"-k must be between 1 and {MAX_K}, not {k}")
    return k
