"""Keeping the full-text index current: build a generation, or apply the changed metadata years to it.

The manifest (``data/index/text/manifest.json``) names the generation in use and the signature (size,
mtime, inode) of every metadata year file it reflects; beside the tantivy directory, one parquet file per
year holds the content hash of each paper it indexed. An update reads only the years whose file changed,
compares hashes and applies the difference: new papers added, changed ones deleted and added again, gone
ones deleted.

Kill safety comes from the order of the commits. tantivy's own commit is atomic (its ``meta.json``); the
hash files are written after it and the manifest last, so at any kill point the index holds at least
what the hashes say and the hashes at least what the manifest says. A rerun then diffs the years again
and re-applies changes by id (delete, then add), which is idempotent. A build writes a new generation
beside the old one and switches the manifest; files no manifest names are swept.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import polars as pl

from papersys.embed.text import hash_texts
from papersys.errors import StoreError
from papersys.faults import crash_point
from papersys.runtime import Runtime, cpu_threads, utc_stamp
from papersys.search import text
from papersys.search.papers import COLUMNS as PAPER_COLUMNS
from papersys.search.papers import paper_record
from papersys.search.report import TextIndexReport
from papersys.store.atomic import file_stat, read_json, sweep_temp_files, write_json, write_parquet
from papersys.store.layout import Layout
from papersys.store.metadata import read_year, year_rows
from papersys.store.storage import storage_guard

log = logging.getLogger(__name__)
COLUMNS = PAPER_COLUMNS  # what the index holds: the indexed fields and the stored display record
HASHES = {"id": pl.String(), "hash": pl.String()}


@dataclass(frozen=True)
class TextManifest:
    generation: int
    count: int
    signature: dict[str, list[int] | None]  # metadata year → file_stat when last applied
    schema_version: int = text.SCHEMA_VERSION
    library: str = field(default_factory=text.library_version)
    built_at: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextManifest:
        return cls(
            generation=int(data["generation"]),
            count=int(data["count"]),
            signature={str(k): v for k, v in dict(data["signature"]).items()},
            schema_version=int(data["schema_version"]),
            library=str(data["library"]),
            built_at=str(data.get("built_at", "")),
            updated_at=str(data.get("updated_at", "")),
        )


def read_text_manifest(layout: Layout) -> TextManifest | None:
    """The manifest, None when there is no index; StoreError when it is damaged."""
    data = read_json(layout.text_index_manifest)
    if data is None:
        return None
    try:
        return TextManifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(layout.text_index_manifest, f"is not a full-text index manifest ({exc})") from exc


def metadata_signature(layout: Layout) -> dict[str, list[int] | None]:
    return {str(year): file_stat(layout.metadata_file(year)) for year in layout.metadata_years()}


def changed_years(old: dict[str, list[int] | None], new: dict[str, list[int] | None]) -> list[int]:
    return sorted(int(y) for y in set(old) | set(new) if old.get(y) != new.get(y))


def update_text_index(layout: Layout, *, rebuild: bool = False, runtime: Runtime) -> TextIndexReport:
    """Bring the full-text index up to date with the metadata store (build it when there is none). A storage
    fault (tantivy says it in its own words) becomes a StorageError naming the index directory."""
    with storage_guard(layout.text_index_dir, "write the full-text index"):
        return _update_text_index(layout, rebuild=rebuild, runtime=runtime)


def _update_text_index(layout: Layout, *, rebuild: bool, runtime: Runtime) -> TextIndexReport:
    began = time.monotonic()
    try:
        old = read_text_manifest(layout)
    except StoreError as exc:  # derived data: build it again
        log.warning("the full-text index is unreadable (%s): rebuilding it", exc)
        old, rebuild = None, True
    if old is None and not layout.metadata_years():
        return TextIndexReport("no-metadata", seconds=time.monotonic() - began)
    reasons, index = _rebuild_reasons(layout, old, rebuild=rebuild)
    _sweep(layout, old)
    if old is None or index is None:
        log.info("building the full-text index (%s)", "; ".join(reasons))
        report = _build(layout, old, runtime)
    else:
        report = _update(layout, old, index, runtime)
    return replace(report, seconds=time.monotonic() - began)


def _rebuild_reasons(layout: Layout, old: TextManifest | None, *, rebuild: bool) -> tuple[list[str], Any]:
    """Why the index must be built anew (none: the opened index, to be updated)."""
    if old is None:
        return ["there is none yet"], None
    reasons = ["--rebuild"] if rebuild else []
    if old.schema_version != text.SCHEMA_VERSION:
        reasons.append(f"its schema version {old.schema_version} is not {text.SCHEMA_VERSION}")
    try:
        index = text.open_index(layout.text_index_generation(old.generation))
    except StoreError as exc:
        return [*reasons, str(exc)], None
    return reasons, (None if reasons else index)


def _year_docs(layout: Layout, year: int) -> tuple[pl.DataFrame, list[int] | None]:
    """A year's papers with a content hash each, and the file signature taken before the read (so a file
    replaced meanwhile only makes the next update read it again)."""
    stat = file_stat(layout.metadata_file(year))
    frame = read_year(layout, year, COLUMNS)
    content = pl.concat_str(
        [
            pl.col("title").fill_null(""),
            pl.col("abstract").fill_null(""),
            pl.col("authors").list.join("\x1e").fill_null(""),
            pl.col("categories").list.join(" ").fill_null(""),
            pl.col("created").cast(pl.String).fill_null(""),
            *(pl.col(c).cast(pl.String).fill_null("") for c in ("primary_category", "updated", "doi")),
            *(pl.col(c).fill_null("") for c in ("journal_ref", "comments", "license")),
        ],
        separator="\x1f",
    )
    hashes = hash_texts(frame.select(content.alias("c"))["c"])
    return frame.with_columns(hash=hashes), stat


def _add(writer: Any, frame: pl.DataFrame) -> None:
    for row in frame.iter_rows(named=True):
        writer.add_document(
            text.TextDoc(
                row["id"],
                row["title"] or "",
                row["abstract"] or "",
                row["authors"] or (),
                row["categories"] or (),
                row["created"],
                paper_record(row),
            ).to_document()
        )


def _build(layout: Layout, old: TextManifest | None, runtime: Runtime) -> TextIndexReport:
    generation = (old.generation if old else 0) + 1
    target = layout.text_index_generation(generation)
    shutil.rmtree(target, ignore_errors=True)  # a killed earlier attempt at this generation
    shutil.rmtree(layout.text_index_hashes(generation, 0).parent, ignore_errors=True)
    try:
        return _build_generation(layout, generation, runtime)
    except BaseException:  # a failed build (a full disk) must not leave its half-written generation behind
        committed = None
        with contextlib.suppress(Exception):
            committed = read_json(layout.text_index_manifest)
        if not (isinstance(committed, dict) and committed.get("generation") == generation):
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(layout.text_index_hashes(generation, 0).parent, ignore_errors=True)
        raise


def _build_generation(layout: Layout, generation: int, runtime: Runtime) -> TextIndexReport:
    index = text.create(layout.text_index_generation(generation))
    years = layout.metadata_years()
    task = runtime.progress.task("full-text index", total=_paper_count(layout, years), unit="papers")
    signature: dict[str, list[int] | None] = {}
    hashes: dict[int, pl.DataFrame] = {}
    try:
        with text.writing(index, cpu_threads()) as writer:
            for year in years:
                runtime.check_cancel()
                frame, signature[str(year)] = _year_docs(layout, year)
                _add(writer, frame)
                hashes[year] = frame.select("id", "hash")
                task.advance(frame.height)
            crash_point("text-index.before-commit")
            writer.commit()
    finally:
        task.close()
    crash_point("text-index.after-commit")
    for year, frame in hashes.items():
        write_parquet(frame, layout.text_index_hashes(generation, year))
    index.reload()
    count = text.count(index.searcher())
    now = utc_stamp()
    write_json(
        TextManifest(generation, count, signature, built_at=now, updated_at=now).to_dict(), layout.text_index_manifest
    )
    _sweep(layout, read_text_manifest(layout))
    return TextIndexReport("built", count=count, added=count)


def _update(layout: Layout, old: TextManifest, index: Any, runtime: Runtime) -> TextIndexReport:
    changed = changed_years(old.signature, metadata_signature(layout))
    if not changed:
        return TextIndexReport("current", count=old.count)
    signature = dict(old.signature)
    pending: dict[int, pl.DataFrame] = {}
    added = replaced = removed = 0
    with text.writing(index, cpu_threads()) as writer:
        for year in changed:
            runtime.check_cancel()
            now, before = _now_and_before(layout, old.generation, year)
            frame, stat = now
            diff = _diff(frame, before)
            # "new" papers too: a killed earlier run may have committed them without recording their hashes
            text.delete(writer, diff["gone"] + diff["changed"] + diff["new"])
            _add(writer, frame.filter(pl.col("id").is_in(diff["new"] + diff["changed"])))
            added, replaced, removed = (
                added + len(diff["new"]),
                replaced + len(diff["changed"]),
                removed + len(diff["gone"]),
            )
            pending[year] = frame.select("id", "hash")
            if stat is None:
                signature.pop(str(year), None)
            else:
                signature[str(year)] = stat
        crash_point("text-index.before-commit")
        writer.commit()
    crash_point("text-index.after-commit")
    for year, hashes in pending.items():
        write_parquet(hashes, layout.text_index_hashes(old.generation, year))
    index.reload()
    count = text.count(index.searcher())
    write_json(
        replace(old, count=count, signature=signature, updated_at=utc_stamp()).to_dict(), layout.text_index_manifest
    )
    return TextIndexReport("updated", count=count, added=added, replaced=replaced, removed=removed)


def _now_and_before(
    layout: Layout, generation: int, year: int
) -> tuple[tuple[pl.DataFrame, list[int] | None], pl.DataFrame]:
    path = layout.text_index_hashes(generation, year)
    before = pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=HASHES)
    if not layout.metadata_file(year).exists():  # the whole year went away
        return (pl.DataFrame(schema={**HASHES, **{c: pl.String() for c in COLUMNS[1:]}}), None), before
    return _year_docs(layout, year), before


def _diff(now: pl.DataFrame, before: pl.DataFrame) -> dict[str, list[str]]:
    joined = now.select("id", "hash").join(before.select("id", old="hash"), on="id", how="full", coalesce=True)
    return {
        "new": joined.filter(pl.col("old").is_null())["id"].to_list(),
        "changed": joined.filter(
            pl.col("hash").is_not_null() & pl.col("old").is_not_null() & (pl.col("hash") != pl.col("old"))
        )["id"].to_list(),
        "gone": joined.filter(pl.col("hash").is_null())["id"].to_list(),
    }


def _paper_count(layout: Layout, years: list[int]) -> int:
    total = 0
    for year in years:
        try:
            total += year_rows(layout, year)
        except Exception as exc:  # only the progress total suffers; the read itself reports the damage
            log.debug("cannot count the papers of %s: %s", year, exc)
    return total


def _sweep(layout: Layout, manifest: TextManifest | None) -> None:
    """Remove generations (and their hash files) that the manifest does not name: old or half-built ones."""
    root = layout.text_index_dir
    if not root.is_dir():
        return
    sweep_temp_files(root)
    keep = {layout.text_index_manifest.name}
    if manifest is not None:
        keep |= {
            layout.text_index_generation(manifest.generation).name,
            layout.text_index_hashes(manifest.generation, 0).parent.name,
        }
    for entry in root.iterdir():
        if entry.name in keep or entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def text_state(layout: Layout) -> dict[str, Any]:
    """What ``status`` says of the full-text index: its count and the years it has not applied yet."""
    try:
        manifest = read_text_manifest(layout)
    except StoreError as exc:
        return {"indexed": 0, "current": False, "error": str(exc), "changed_years": [], "updated_at": None}
    if manifest is None:
        return {"indexed": 0, "current": not layout.metadata_years(), "changed_years": [], "updated_at": None}
    changed = changed_years(manifest.signature, metadata_signature(layout))
    return {
        "indexed": manifest.count,
        "current": not changed,
        "changed_years": changed,
        "updated_at": manifest.updated_at or manifest.built_at,
    }
