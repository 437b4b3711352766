"""Reproducible synthetic arXiv papers: realistic sizes, id styles, versions, TeX/Unicode and optional fields.

Same arguments ⇒ same papers (one ``random.Random(seed)``, no set/dict-order dependence). Fast enough for
100k papers in a few seconds: abstracts are drawn from a sentence pool built once per call.
"""

from __future__ import annotations

import random
import re
from datetime import date, datetime, timedelta

from support.oai_records import Author, Paper, SetStyle, Version, set_specs_for, version_date

_PROSE = (
    "adaptive attention bayesian bound boundary category causal coherent compact convergence curvature data "
    "decoding deep dense diffusion dynamics efficient embedding entropy equivariant estimation field flow "
    "fluctuation gauge gradient graph hamiltonian inference invariant kernel lattice learning linear local "
    "manifold markov matrix measure method model modular network neural noise operator optimal optimization "
    "oscillation phase policy posterior prior quantum random regression representation robust sampling scalar "
    "scaling search sparse spectral stability state stochastic structure symmetry system tensor theory "
    "topological transformer transport uncertainty variational vector wave"
)
_WORDS = tuple(_PROSE.split())
_SPECIAL = (  # what arXiv titles and abstracts really contain
    r"$\alpha$-stable", r"$O(n \log n)$", r"Poincar\'e", r"$\mathcal{N}=4$", "Schrödinger", "Erdős–Rényi",  # noqa: RUF001
    "naïve", "Zürich", "中文 corpora", "🚀 fast", "R&D", "p < 0.05", "x > y", "a & b", '"quoted"', "l'Hôpital",
)  # fmt: skip
_SURNAMES = (
    "Smith", "Wang", "Müller", "García", "Nguyen", "Kowalski", "Rossi", "Tanaka", "Ivanov", "Pérez", "O'Brien",
    "Zhang", "Li", "Gödel", "Dubois", "Kim", "Singh", "Andersson", "van der Berg", "de la Cruz", "Öztürk",
)  # fmt: skip
_FORENAMES = ("A.", "J.", "Jane", "Wei", "Jean-Pierre", "María José", "K. L.", "Søren", "Hiroshi", "Ana", "J.-P.")
_SUFFIXES = ("Jr.", "III", "Sr.", "II")
_CATEGORIES = (
    "cs.LG", "cs.CV", "cs.CL", "cs.AI", "cs.DS", "cs.CR", "stat.ML", "stat.ME", "math.AG", "math.PR", "math.CO",
    "math.NT", "math-ph", "hep-th", "hep-ph", "hep-ex", "gr-qc", "quant-ph", "astro-ph.GA", "astro-ph.CO",
    "cond-mat.str-el", "cond-mat.mes-hall", "physics.optics", "q-bio.NC", "q-fin.ST", "econ.EM", "eess.SP",
    "nucl-th", "nlin.SI",
)  # fmt: skip
_OLD_ARCHIVES = ("hep-th", "hep-ph", "gr-qc", "astro-ph", "cond-mat", "quant-ph", "math.AG", "math.NT", "solv-int")
_LICENSES = (
    "http://arxiv.org/licenses/nonexclusive-distrib/1.0/",
    "http://creativecommons.org/licenses/by/4.0/",
    "http://creativecommons.org/licenses/by-sa/4.0/",
    "http://creativecommons.org/publicdomain/zero/1.0/",
)


_WRAP = {width: re.compile(rf"(.{{1,{width}}})(?: +|$)") for width in (72, 80)}


def wrap(text: str, width: int = 80, indent: str = "") -> str:
    """Greedy line wrap (the hard line breaks arXiv sends); a regex, 4x faster than textwrap for 100k papers."""
    return ("\n" + indent).join(_WRAP[width].findall(text))


def _sentence(rng: random.Random, specials: bool) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 22))
    if specials:
        words.insert(rng.randrange(len(words)), rng.choice(_SPECIAL))
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _title(rng: random.Random, special: bool) -> str:
    words = [w.capitalize() if rng.random() < 0.6 else w for w in rng.choices(_WORDS, k=rng.randint(8, 14))]
    if special:
        words.insert(rng.randrange(len(words)), rng.choice(_SPECIAL))
    words[0] = words[0].capitalize()
    title = " ".join(words)
    while len(title) < 60:
        title += " " + rng.choice(_WORDS)
    title = title[:120].rsplit(" ", 1)[0] if len(title) > 120 else title
    return wrap(title, 72, "  ") if rng.random() < 0.5 else title  # arXiv wraps long titles with 2-space indent


def _abstract(rng: random.Random, pool: list[str], special_pool: list[str], special: bool) -> str:
    target = rng.randint(800, 1500)
    parts: list[str] = []
    size = 0
    for sentence in rng.choices(pool, k=20):  # ~95 chars each: always more than enough
        parts.append(sentence)
        size += len(sentence) + 1
        if size >= target - 30:
            break
    if special:
        parts.insert(rng.randrange(len(parts)), rng.choice(special_pool))
    text = wrap(" ".join(parts))
    if rng.random() < 0.2:  # arXiv abstracts sometimes start a second paragraph with an indent
        half = len(parts) // 2
        text = wrap(" ".join(parts[:half])) + "\n  " + wrap(" ".join(parts[half:]))
    return "  " + text + "\n"  # leading spaces and trailing newline, exactly as arXiv sends abstracts


def _authors(rng: random.Random) -> list[Author]:
    if rng.random() < 0.01:
        return [("ATLAS Collaboration", "", "")]  # collaborations have no forenames
    return [
        (rng.choice(_SURNAMES), rng.choice(_FORENAMES), rng.choice(_SUFFIXES) if rng.random() < 0.04 else "")
        for _ in range(rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6, 8)))
    ]


def _when(rng: random.Random, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60), rng.randrange(60))


def _versions(rng: random.Random, created: date, last: date) -> list[Version]:
    """1 version when ``created == last``, else 2 to 4 with dates from ``created`` to ``last``."""
    count = 1 if created == last else rng.choice((2, 2, 3, 4))
    span = (last - created).days
    days = sorted(created + timedelta(days=rng.randint(0, span)) for _ in range(count - 2))
    dates = [created, *days, last] if count > 1 else [created]
    return [(f"v{i + 1}", version_date(_when(rng, d)), f"{rng.randint(5, 4000)}kb") for i, d in enumerate(dates)]


def synthetic_papers(
    n: int,
    seed: int = 0,
    start: date = date(2024, 1, 1),
    days: int = 30,
    *,
    revised_fraction: float = 0.15,
    old_style_fraction: float = 0.03,
    special_fraction: float = 0.1,
    deleted_fraction: float = 0.0,
    set_style: SetStyle = "legacy",
    affiliations: bool = False,
) -> list[Paper]:
    """``n`` distinct papers with datestamps spread over ``days`` days from ``start``, in id order.

    Most are new submissions (5-digit ids of their month); ``revised_fraction`` are older papers revised in
    the window (4-digit ids before 2015, 5-digit after), ``old_style_fraction`` carry old-style ids
    (``hep-th/9901001``, ``math.AG/0101001``) whose metadata was refreshed. ``special_fraction`` get TeX,
    Unicode, ``&``, ``<`` and quotes in title and abstract. ``affiliations`` adds legacy ``<affiliation>``s.
    """
    if start < date(2008, 1, 1):
        raise ValueError("start must be 2008 or later (new-style ids only begin in 2007-04)")
    rng = random.Random(seed)
    pool = [_sentence(rng, False) for _ in range(2000)]
    special_pool = [_sentence(rng, True) for _ in range(300)]
    used: set[str] = set()
    serial: dict[str, int] = {}
    papers: list[Paper] = []
    while len(papers) < n:
        datestamp = start + timedelta(days=rng.randrange(days))
        kind = rng.random()
        if kind < old_style_fraction:
            archive = rng.choice(_OLD_ARCHIVES)
            created = date(rng.randint(1992, 2006), rng.randint(1, 12), rng.randint(1, 28))
            arxiv_id = f"{archive}/{created:%y%m}{rng.randint(1, 999):03d}"
            categories = list(dict.fromkeys([archive, *rng.sample(_CATEGORIES, rng.randint(0, 1))]))
            last = min(created + timedelta(days=rng.choice((0, 0, 40, 300))), datestamp)
        else:
            created = datestamp - timedelta(days=rng.randint(0, 3))
            last = created if rng.random() < 0.85 else datestamp
            prefix = f"{created:%y%m}"
            width = 5 if created.year >= 2015 else 4
            if kind < old_style_fraction + revised_fraction or serial.get(prefix, 0) >= 10**width - 3:
                # an older paper revised now (also where a month's id range would overflow)
                created = date(rng.randint(2008, start.year), rng.randint(1, 12), rng.randint(1, 28))
                created = min(created, datestamp - timedelta(days=30))
                last = datestamp - timedelta(days=rng.randint(0, 2))
                prefix = f"{created:%y%m}"
                width = 5 if created.year >= 2015 else 4
            serial[prefix] = serial.get(prefix, 0) + (1 if rng.random() < 0.9 else 2)
            arxiv_id = f"{prefix}.{serial[prefix]:0{width}d}"
            categories = rng.sample(_CATEGORIES, rng.choice((1, 1, 2, 2, 3, 4)))
        if arxiv_id in used:
            continue
        used.add(arxiv_id)
        special = rng.random() < special_fraction
        authors = _authors(rng)
        versions = _versions(rng, created, last)
        paper = Paper(
            id=arxiv_id,
            datestamp=datestamp,
            title=_title(rng, special),
            abstract=_abstract(rng, pool, special_pool, special),
            authors=authors,
            categories=categories,
            versions=versions,
            created=created,
            updated=last if len(versions) > 1 else None,
            doi=f"10.{rng.randint(1000, 9999)}/synth.{rng.randint(10**5, 10**6)}" if rng.random() < 0.3 else None,
            journal_ref=f"J. Synth. Res. {rng.randint(1, 99)} ({datestamp.year}) {rng.randint(1, 999)}"
            if rng.random() < 0.2
            else None,
            comments=f"{rng.randint(4, 60)} pages, {rng.randint(0, 12)} figures" if rng.random() < 0.6 else None,
            license=rng.choice(_LICENSES) if rng.random() < 0.8 else None,
            report_no=f"SYN-{datestamp.year}-{rng.randint(1, 999):03d}" if rng.random() < 0.05 else None,
            msc_class="14H10, 05A15" if categories[0].startswith("math") and rng.random() < 0.3 else None,
            acm_class="I.2.6; F.2.2" if categories[0].startswith("cs") and rng.random() < 0.1 else None,
            proxy="ccsd hal-0123" if rng.random() < 0.01 else None,
            set_specs=set_specs_for(categories, set_style),
            deleted=rng.random() < deleted_fraction,
            affiliations=[[f"University of {a[0]}"] for a in authors] if affiliations else (),
            source_type=rng.choice((None, "D", "AD")),
        )
        papers.append(paper)
    papers.sort(key=lambda p: p.id)
    return papers
