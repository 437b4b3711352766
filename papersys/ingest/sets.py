"""arXiv's OAI set membership as a pure function of a record's categories, and the sets/categories filter.

Set specs follow arXiv's server: ``group`` (``cs``), ``group:archive`` (``physics:hep-th``) and
``group:archive:SUBJECT`` (``cs:cs:LG``, ``physics:astro-ph:CO``); a record is in a set when any of its
categories (primary or cross-list) is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

GROUPS = frozenset({"cs", "econ", "eess", "math", "physics", "q-bio", "q-fin", "stat"})
# the archives of the physics group; every other group has one archive of its own name
PHYSICS_ARCHIVES = frozenset(
    {
        "astro-ph",
        "cond-mat",
        "gr-qc",
        "hep-ex",
        "hep-lat",
        "hep-ph",
        "hep-th",
        "math-ph",
        "nlin",
        "nucl-ex",
        "nucl-th",
        "physics",
        "quant-ph",
    }
)
# defunct archives, still listed as categories on old papers, and the category that subsumed each
SUBSUMED = {
    "acc-phys": "physics.acc-ph",
    "adap-org": "nlin.AO",
    "alg-geom": "math.AG",
    "ao-sci": "physics.ao-ph",
    "atom-ph": "physics.atom-ph",
    "bayes-an": "physics.data-an",
    "chao-dyn": "nlin.CD",
    "chem-ph": "physics.chem-ph",
    "cmp-lg": "cs.CL",
    "comp-gas": "nlin.CG",
    "dg-ga": "math.DG",
    "funct-an": "math.FA",
    "mtrl-th": "cond-mat.mtrl-sci",
    "patt-sol": "nlin.PS",
    "plasm-ph": "physics.plasm-ph",
    "q-alg": "math.QA",
    "solv-int": "nlin.SI",
    "supr-con": "cond-mat.supr-con",
}
# pairs arXiv treats as one category (alias → canonical); a paper in one is in the other's sets too
ALIASES = {
    "math.MP": "math-ph",
    "stat.TH": "math.ST",
    "math.IT": "cs.IT",
    "q-fin.EC": "econ.GN",
    "cs.SY": "eess.SY",
    "cs.NA": "math.NA",
}
_PARTNER = {**ALIASES, **{canonical: alias for alias, canonical in ALIASES.items()}}


def canonical_category(category: str) -> str:
    """The current name of a category: defunct archives → their successor, aliases → the canonical one."""
    category = SUBSUMED.get(category, category)
    return ALIASES.get(category, category)


def _own_sets(category: str) -> set[str]:
    archive, _, subject = category.partition(".")
    if archive in PHYSICS_ARCHIVES:
        group = "physics"
    elif archive in GROUPS:
        group = archive
    else:
        return set()  # unknown or test archive: in no set
    specs = {group, f"{group}:{archive}"}
    if subject:
        specs.add(f"{group}:{archive}:{subject}")
    return specs


@lru_cache(maxsize=4096)
def category_sets(category: str) -> frozenset[str]:
    """Every set spec a paper listed in ``category`` belongs to.

    ``cs.LG`` → {cs, cs:cs, cs:cs:LG}; ``hep-th`` → {physics, physics:hep-th}; ``solv-int`` (defunct) →
    the sets of ``nlin.SI``; ``math-ph`` → its own physics sets plus those of its alias ``math.MP``.
    """
    current = SUBSUMED.get(category, category)
    specs = _own_sets(current)
    partner = _PARTNER.get(current)
    if partner:
        specs |= _own_sets(partner)
    return frozenset(specs)


def in_sets(categories: Iterable[str], sets: Iterable[str]) -> bool:
    """Whether a record listing ``categories`` belongs to any of ``sets``."""
    wanted = frozenset(sets)
    return any(not wanted.isdisjoint(category_sets(c)) for c in categories)


@dataclass(frozen=True)
class RecordFilter:
    """``ingest.sets`` and ``ingest.categories`` as one keep-test; an empty side does not restrict."""

    sets: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()  # every spelling of the wanted categories (category_names)

    @classmethod
    def build(cls, sets: Sequence[str] = (), categories: Sequence[str] = ()) -> RecordFilter:
        return cls(frozenset(sets), category_names(categories))

    @property
    def active(self) -> bool:
        return bool(self.sets or self.categories)

    def keeps(self, categories: Sequence[str]) -> bool:
        """Keep a record when it is in one of the sets and lists one of the categories (or an alias of one)."""
        if self.sets and not in_sets(categories, self.sets):
            return False
        return not self.categories or not self.categories.isdisjoint(categories)


def category_names(categories: Iterable[str]) -> frozenset[str]:
    """Every spelling a record may list for these categories: themselves, their aliases and the defunct
    archives they subsumed (``math-ph`` ↔ ``math.MP``, ``nlin.SI`` ← ``solv-int``), for exact-match filters."""
    wanted = {canonical_category(c) for c in categories}
    known = [*categories, *SUBSUMED, *ALIASES, *ALIASES.values(), *SUBSUMED.values()]
    return frozenset(name for name in known if canonical_category(name) in wanted)
