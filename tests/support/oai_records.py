"""One synthetic arXiv record (``Paper``), arXiv's set specs for its categories, and the exact XML of its
OAI ``<record>`` in the ``arXiv`` and ``arXivRaw`` formats, laid out byte for byte like arXiv's output."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Literal

OAI_ID_PREFIX = "oai:arXiv.org:"
FORMATS = ("arXiv", "arXivRaw")
SetStyle = Literal["legacy", "current"]
Author = tuple[str, str, str]  # (keyname, forenames, suffix); "" where absent
Version = tuple[str, str, str]  # ("v1", "Mon, 07 Oct 2024 10:45:05 GMT", "12kb")

GROUPS = ("cs", "econ", "eess", "math", "physics", "q-bio", "q-fin", "stat")
PHYSICS_ARCHIVES = (
    "astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th",
    "math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "quant-ph",
)  # fmt: skip
# Archives arXiv folded into others; old-style ids (solv-int/9901001) still carry them as categories.
SUBSUMED = {
    "alg-geom": "math", "dg-ga": "math", "funct-an": "math", "q-alg": "math", "cmp-lg": "cs",
    "adap-org": "nlin", "chao-dyn": "nlin", "comp-gas": "nlin", "patt-sol": "nlin", "solv-int": "nlin",
    "acc-phys": "physics", "ao-sci": "physics", "atom-ph": "physics", "bayes-an": "physics",
    "chem-ph": "physics", "plasm-ph": "physics", "mtrl-th": "cond-mat", "supr-con": "cond-mat",
}  # fmt: skip

_NS = {
    "arXiv": 'xmlns="http://arxiv.org/OAI/arXiv/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://arxiv.org/OAI/arXiv/ http://arxiv.org/OAI/arXiv.xsd"',
    "arXivRaw": 'xmlns="http://arxiv.org/OAI/arXivRaw/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://arxiv.org/OAI/arXivRaw/ http://arxiv.org/OAI/arXivRaw.xsd"',
}


def escape(text: str) -> str:
    """XML text/attribute escaping as arXiv does it (``"`` becomes ``&quot;``, apostrophes stay)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _group_and_archive(category: str) -> tuple[str, str]:
    archive = category.split(".", 1)[0]
    archive = SUBSUMED.get(archive, archive)
    if archive in PHYSICS_ARCHIVES:
        return "physics", archive
    if archive in GROUPS:
        return archive, archive
    raise ValueError(f"unknown arXiv category {category!r}")


def set_specs_for(categories: Sequence[str], style: SetStyle = "legacy") -> tuple[str, ...]:
    """The setSpecs arXiv puts in a record header for these categories, deduplicated, in order.

    legacy (export.arxiv.org until 2025): ``cs.LG`` → ``cs``, ``hep-th`` → ``physics:hep-th``,
    ``astro-ph.GA`` → ``physics:astro-ph``. current (oaipmh.arxiv.org): ``cs.LG`` → ``cs:cs:LG``,
    ``hep-th`` → ``physics:hep-th``, ``astro-ph.GA`` → ``physics:astro-ph:GA``.
    """
    specs: list[str] = []
    for category in categories:
        group, archive = _group_and_archive(category)
        if style == "legacy":
            spec = group if group != "physics" else f"physics:{archive}"
        else:
            sub = category.split(".", 1)[1] if "." in category else ""
            spec = f"{group}:{archive}" + (f":{sub}" if sub else "")
        if spec not in specs:
            specs.append(spec)
    return tuple(specs)


def version_date(when: datetime) -> str:
    """RFC 2822 date as the current endpoint writes it: ``Mon, 07 Oct 2024 10:45:05 GMT`` (zero-padded)."""
    return format_datetime(when.replace(tzinfo=UTC), usegmt=True)


def _date_of(version: Version) -> date:
    return parsedate_to_datetime(version[1]).date()


def join_authors(authors: Sequence[Author]) -> str:
    """arXivRaw's author string: ``A. One, B. Two and C. Three`` ("Forenames Keyname Suffix" each)."""
    names = [" ".join(p for p in (forenames, keyname, suffix) if p) for keyname, forenames, suffix in authors]
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class Paper:
    """One arXiv record as both formats carry it. Immutable (the server caches its XML): change a paper
    with ``revised()``, ``as_deleted()`` or ``dataclasses.replace``. Empty fields get sensible defaults."""

    id: str  # version-less: 2401.00001, 0704.0716, hep-th/9901001, math.AG/0101001
    datestamp: date  # OAI last-modified date
    title: str = ""
    abstract: str = ""
    authors: Sequence[Author] = ()
    categories: Sequence[str] = ("cs.LG",)  # primary first
    versions: Sequence[Version] = ()
    created: date | None = None  # default: date of v1
    updated: date | None = None  # default: date of the last version when there are several
    doi: str | None = None
    journal_ref: str | None = None
    comments: str | None = None
    license: str | None = None
    report_no: str | None = None
    msc_class: str | None = None
    acm_class: str | None = None
    submitter: str | None = None  # default: the first author
    proxy: str | None = None
    set_specs: Sequence[str] = ()  # default: set_specs_for(categories) (legacy style)
    deleted: bool = False
    authors_raw: str | None = None  # arXivRaw's author string as the submitter typed it; default joins authors
    affiliations: Sequence[Sequence[str]] = ()  # per author; only the legacy `arXiv` format emitted them
    source_type: str | None = None  # arXivRaw <source_type> of every version, e.g. "D"
    _xml: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)
    _selects: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalise once, here
        put(self, "authors", tuple((a[0], a[1], a[2]) for a in self.authors) or (("Doe", "Jane", ""),))
        put(self, "categories", tuple(self.categories))
        put(self, "affiliations", tuple(tuple(a) for a in self.affiliations))
        if not self.categories:
            raise ValueError(f"{self.id}: a paper needs at least one category")
        if not self.title:
            put(self, "title", f"Synthetic paper {self.id}")
        if not self.abstract:
            put(self, "abstract", f"  Abstract of synthetic paper {self.id}.\n")
        if not self.versions:
            put(self, "versions", (("v1", version_date(datetime(*self.datestamp.timetuple()[:3], 12)), "10kb"),))
        put(self, "versions", tuple((v[0], v[1], v[2]) for v in self.versions))
        if self.created is None:
            put(self, "created", _date_of(self.versions[0]))
        if self.updated is None and len(self.versions) > 1:
            put(self, "updated", _date_of(self.versions[-1]))
        if self.submitter is None:
            keyname, forenames, _ = self.authors[0]
            put(self, "submitter", f"{forenames} {keyname}".strip())
        put(self, "set_specs", tuple(self.set_specs) or set_specs_for(self.categories))
        put(self, "_selects", tuple(dict.fromkeys((*self.set_specs, *set_specs_for(self.categories, "current")))))

    @property
    def oai_identifier(self) -> str:
        return OAI_ID_PREFIX + self.id

    def in_set(self, spec: str) -> bool:
        """Hierarchical set membership: ``cs`` holds ``cs`` and ``cs:…``; checked against the header's
        specs and the current endpoint's ``group:archive:CAT`` specs, so both spellings select."""
        prefix = spec + ":"
        return any(s == spec or s.startswith(prefix) for s in self._selects)

    def revised(self, datestamp: date, *, when: datetime | None = None, size: str = "20kb", **changes: object) -> Paper:
        """A new version of this paper (v(n+1) submitted at ``when``, default noon of ``datestamp``)."""
        when = when or datetime(datestamp.year, datestamp.month, datestamp.day, 12)
        versions = (*self.versions, (f"v{len(self.versions) + 1}", version_date(when), size))
        return dataclasses.replace(self, datestamp=datestamp, versions=versions, updated=when.date(), **changes)  # type: ignore[arg-type]

    def as_deleted(self, datestamp: date | None = None) -> Paper:
        return dataclasses.replace(self, deleted=True, datestamp=datestamp or self.datestamp)


def _opt(tag: str, value: str | None) -> str:
    return f"<{tag}>{escape(value)}</{tag}>" if value else ""


def _header(paper: Paper) -> str:
    status = ' status="deleted"' if paper.deleted else ""
    specs = "".join(f" <setSpec>{escape(s)}</setSpec>\n" for s in paper.set_specs)
    return (
        f"<header{status}>\n <identifier>{OAI_ID_PREFIX}{escape(paper.id)}</identifier>\n"
        f" <datestamp>{paper.datestamp.isoformat()}</datestamp>\n{specs}</header>"
    )


def _arxiv(paper: Paper) -> str:
    authors = []
    for i, (keyname, forenames, suffix) in enumerate(paper.authors):
        affs = paper.affiliations[i] if i < len(paper.affiliations) else ()
        aff = "".join(f"<affiliation>{escape(a)}</affiliation>" for a in affs)
        authors.append(
            f"<author><keyname>{escape(keyname)}</keyname>{_opt('forenames', forenames)}{_opt('suffix', suffix)}"
            f"{aff}</author>"
        )
    assert paper.created is not None
    return (
        f"<arXiv {_NS['arXiv']}>\n <id>{escape(paper.id)}</id><created>{paper.created.isoformat()}</created>"
        + (f"<updated>{paper.updated.isoformat()}</updated>" if paper.updated else "")
        + f"<authors>{''.join(authors)}</authors><title>{escape(paper.title)}</title>"
        + f"<categories>{escape(' '.join(paper.categories))}</categories>"
        + _opt("comments", paper.comments)
        + _opt("proxy", paper.proxy)
        + _opt("report-no", paper.report_no)
        + _opt("msc-class", paper.msc_class)
        + _opt("acm-class", paper.acm_class)
        + _opt("journal-ref", paper.journal_ref)
        + _opt("doi", paper.doi)
        + _opt("license", paper.license)
        + f"<abstract>{escape(paper.abstract)}</abstract></arXiv>"
    )


def _arxiv_raw(paper: Paper) -> str:
    source = _opt("source_type", paper.source_type)
    versions = "".join(
        f'<version version="{escape(v)}"><date>{escape(d)}</date><size>{escape(s)}</size>{source}</version>'
        for v, d, s in paper.versions
    )
    authors = paper.authors_raw if paper.authors_raw is not None else join_authors(paper.authors)
    return (
        f"<arXivRaw {_NS['arXivRaw']}>\n <id>{escape(paper.id)}</id>{_opt('submitter', paper.submitter)}{versions}"
        f"<title>{escape(paper.title)}</title><authors>{escape(authors)}</authors>"
        f"<categories>{escape(' '.join(paper.categories))}</categories>"
        + _opt("comments", paper.comments)
        + _opt("proxy", paper.proxy)
        + _opt("report-no", paper.report_no)
        + _opt("acm-class", paper.acm_class)
        + _opt("msc-class", paper.msc_class)
        + _opt("journal-ref", paper.journal_ref)
        + _opt("doi", paper.doi)
        + _opt("license", paper.license)
        + f"<abstract>{escape(paper.abstract)}</abstract></arXivRaw>"
    )


def render_header(paper: Paper) -> str:
    """The ``<header>`` alone (what ListIdentifiers lists)."""
    return _header(paper)


def render_record(paper: Paper, metadata_prefix: str) -> str:
    """The exact XML of one ``<record>`` (no trailing newline); deleted records carry no ``<metadata>``."""
    if metadata_prefix not in FORMATS:
        raise ValueError(f"unsupported metadata format {metadata_prefix!r}")
    if paper.deleted:
        return f"<record>\n{_header(paper)}\n</record>"
    body = _arxiv(paper) if metadata_prefix == "arXiv" else _arxiv_raw(paper)
    return f"<record>\n{_header(paper)}\n<metadata>\n {body}\n</metadata>\n</record>"


def record_bytes(paper: Paper, metadata_prefix: str) -> bytes:
    """``render_record`` encoded as UTF-8, cached on the paper (papers are immutable)."""
    cached = paper._xml.get(metadata_prefix)
    if cached is None:
        cached = paper._xml[metadata_prefix] = render_record(paper, metadata_prefix).encode()
    return cached


def header_bytes(paper: Paper) -> bytes:
    cached = paper._xml.get("header")
    if cached is None:
        cached = paper._xml["header"] = _header(paper).encode()
    return cached
