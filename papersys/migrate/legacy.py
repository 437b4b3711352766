"""The legacy inputs: which files a directory holds, which vector columns map to which model, and whether a
file's columns are usable (checked from the Parquet schema alone, before anything is read)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from papersys.config import ModelConfig
from papersys.errors import UsageError

LEGACY_TEMPLATE = "{title}\n{abstract}"  # what every legacy vector was computed from (no prefix)
# the legacy file names: generation 1 <year>.parquet; generation 2 metadata_<year> with embedding_<year>
GEN1_FILE = re.compile(r"^(\d{4})\.parquet$")
GEN2_METADATA = re.compile(r"^metadata_(\d{4})\.parquet$")
GEN2_VECTORS = re.compile(r"^embedding_(\d{4})\.parquet$")


def gen2_metadata_name(year: int) -> str:
    return f"metadata_{year:04d}.parquet"


def gen2_vectors_name(year: int) -> str:
    return f"embedding_{year:04d}.parquet"


@dataclass(frozen=True)
class LegacyModel:
    """A legacy vector column and the papersys model alias (and model name) it migrates to."""

    column: str
    alias: str
    name: str | None = None  # None: the configured model's name


DEFAULT_MODELS = (
    LegacyModel("jasper_v1", "jasper_v1", "NovaSearch/jasper_en_vision_language_v1"),
    LegacyModel("conan_v1", "conan_v1", "TencentBAC/Conan-embedding-v1"),
    LegacyModel("embedding", "gemini_embedding_001", "gemini-embedding-001"),
)


def parse_model_spec(spec: str) -> LegacyModel:
    """``LEGACY_COL=ALIAS[:HF_NAME]`` → LegacyModel (UsageError when malformed)."""
    column, sep, target = spec.partition("=")
    alias, _, name = target.partition(":")
    column, alias, name = column.strip(), alias.strip(), name.strip()
    if not sep or not column or not alias:
        raise UsageError(f"--model {spec!r}: expected LEGACY_COL=ALIAS[:HF_NAME], e.g. jasper_v1=jasper_v1")
    try:
        ModelConfig(alias=alias)
    except ValidationError:
        raise UsageError(f"--model {spec!r}: alias {alias!r} must be letters, digits, '_', '.', '-'") from None
    return LegacyModel(column, alias, name or None)


def model_mapping(specs: Sequence[str]) -> tuple[LegacyModel, ...]:
    """The ``--model`` specs, or the default mapping when none is given; one alias per column and vice versa."""
    models = tuple(parse_model_spec(s) for s in specs) if specs else DEFAULT_MODELS
    for attr in ("column", "alias"):
        values = [getattr(m, attr) for m in models]
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise UsageError(f"--model: {attr} {twice[0]!r} is mapped twice")
    return models


# discovery ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LegacyInput:
    """One year of legacy data: a generation-1 file, or a generation-2 metadata file (+ its vector file)."""

    generation: int
    year: int
    path: Path
    vectors_path: Path | None  # gen 1: the same file; gen 2: embedding_<year>.parquet (None when absent)
    label: str  # path relative to the legacy directory, for the report

    @property
    def vectors_label(self) -> str | None:
        if self.vectors_path is None or self.vectors_path == self.path:
            return None
        return str(Path(self.label).with_name(self.vectors_path.name))


@dataclass(frozen=True)
class Discovery:
    inputs: tuple[LegacyInput, ...]
    orphans: tuple[str, ...]  # embedding_<year>.parquet without its metadata file
    ignored: tuple[str, ...]  # other .parquet files


def discover(legacy_dir: Path) -> Discovery:
    """Every legacy file under ``legacy_dir`` (recursively), in (generation, year, path) order."""
    if not legacy_dir.is_dir():
        raise UsageError(f"{legacy_dir}: not a directory")
    files = sorted(p for p in legacy_dir.rglob("*.parquet") if p.is_file() and not _hidden(p, legacy_dir))
    by_name = {p: str(p.relative_to(legacy_dir)) for p in files}
    inputs, orphans, ignored = [], [], []
    for path in files:
        if m := GEN1_FILE.match(path.name):
            inputs.append(LegacyInput(1, int(m.group(1)), path, path, by_name[path]))
        elif m := GEN2_METADATA.match(path.name):
            year = int(m.group(1))
            vectors = path.with_name(gen2_vectors_name(year))
            inputs.append(LegacyInput(2, year, path, vectors if vectors.exists() else None, by_name[path]))
        elif m := GEN2_VECTORS.match(path.name):
            if not path.with_name(gen2_metadata_name(int(m.group(1)))).exists():
                orphans.append(by_name[path])
        else:
            ignored.append(by_name[path])
    if not inputs and not orphans:
        raise UsageError(
            f"{legacy_dir}: no legacy files (expected <YYYY>.parquet, or metadata_<YYYY>.parquet with "
            "embedding_<YYYY>.parquet)"
        )
    inputs.sort(key=lambda i: (i.generation, i.year, i.label))
    return Discovery(tuple(inputs), tuple(orphans), tuple(ignored))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


# schema checks --------------------------------------------------------------------------------------------
def _is_text(t: pl.DataType) -> bool:
    return isinstance(t, pl.String | pl.Categorical | pl.Enum | pl.Null)


def _is_id(t: pl.DataType) -> bool:
    return _is_text(t) or t.is_numeric()  # a float id column is float damage, repaired where possible


def _is_texts(t: pl.DataType) -> bool:
    return _is_text(t) or (isinstance(t, pl.List | pl.Array) and isinstance(t.inner, pl.DataType) and _is_text(t.inner))


def _is_date(t: pl.DataType) -> bool:
    return _is_text(t) or isinstance(t, pl.Date | pl.Datetime)


def is_vector(t: pl.DataType) -> bool:
    return isinstance(t, pl.List | pl.Array) and t.inner.is_float()


# column kind -> (accepted polars types, what the message says is expected)
_KINDS: dict[str, tuple[Callable[[pl.DataType], bool], str]] = {
    "id": (_is_id, "string"),
    "text": (_is_text, "string"),
    "texts": (_is_texts, "list of strings or a string"),
    "date": (_is_date, "date or YYYY-MM-DD string"),
}
# per file kind: column -> (kind, required)
_PAPER_COLUMNS = {
    "id": ("id", True),
    "title": ("text", True),
    "abstract": ("text", True),
    "categories": ("texts", True),
}
GEN1_COLUMNS = _PAPER_COLUMNS | {
    "created": ("date", True),
    "authors": ("texts", False),
    "date": ("date", False),
    "updated": ("date", False),
    "license": ("text", False),
}
GEN2_COLUMNS = _PAPER_COLUMNS | {
    "publish_date": ("date", True),
    "update_date": ("date", False),
    "authors": ("texts", False),
}
GEN2_VECTOR_COLUMNS = {"id": ("id", True)}


@dataclass(frozen=True)
class Inspection:
    """What a file's schema allows: the known columns present, the mapped vector columns, and any problem."""

    schema: Mapping[str, pl.DataType]
    models: tuple[LegacyModel, ...]  # mapped vector columns present with a vector type
    missing: tuple[str, ...]  # optional columns absent (read as null)
    unexpected: tuple[str, ...]
    problems: tuple[str, ...]  # non-empty: the file is unusable and skipped


def read_schema(path: Path) -> tuple[dict[str, pl.DataType] | None, str | None]:
    try:
        return dict(pl.read_parquet_schema(path)), None
    except Exception as exc:  # polars raises several types for a torn or non-Parquet file
        return None, f"{path.name}: not a readable Parquet file ({type(exc).__name__})"


def inspect_file(
    path: Path, expected: Mapping[str, tuple[str, bool]], models: Sequence[LegacyModel], *, vectors: bool = True
) -> Inspection:
    """Check ``path``'s columns against ``expected`` and the mapped model columns (when ``vectors``)."""
    schema, error = read_schema(path)
    if schema is None:
        return Inspection({}, (), (), (), (error or "unreadable",))
    mapped = {m.column: m for m in models} if vectors else {}
    problems, missing = _check_columns(path.name, schema, expected)
    vector_problems, present = _check_vector_columns(path.name, schema, mapped)
    unexpected = _unexpected_columns(schema, known=expected.keys() | mapped.keys())
    return Inspection(schema, present, missing, unexpected, problems + vector_problems)


def _check_columns(
    name: str, schema: Mapping[str, pl.DataType], expected: Mapping[str, tuple[str, bool]]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(problems, optional columns missing) of the expected columns."""
    problems, missing = [], []
    for column, (kind, required) in expected.items():
        accepts, what = _KINDS[kind]
        if column not in schema and required:
            problems.append(f"{name}: lacks column {column!r}")
        elif column not in schema:
            missing.append(column)
        elif not accepts(schema[column]):
            problems.append(f"{name}: column {column!r} is {schema[column]}, expected {what}")
    return tuple(problems), tuple(missing)


def _check_vector_columns(
    name: str, schema: Mapping[str, pl.DataType], mapped: Mapping[str, LegacyModel]
) -> tuple[tuple[str, ...], tuple[LegacyModel, ...]]:
    """(problems, models whose column is present with a vector type) of the mapped vector columns."""
    problems, present = [], []
    for column, model in mapped.items():
        if column in schema and not is_vector(schema[column]):
            problems.append(f"{name}: vector column {column!r} is {schema[column]}, expected a list of floats")
        elif column in schema:
            present.append(model)
    return tuple(problems), tuple(present)


def _unexpected_columns(schema: Mapping[str, pl.DataType], *, known: Set[str]) -> tuple[str, ...]:
    """Columns neither expected nor mapped; unmapped vector columns say how to migrate them."""
    unexpected = []
    for column, dtype in schema.items():
        if column in known:
            continue
        hint = f" (vectors; pass --model {column}=ALIAS to migrate them)" if is_vector(dtype) else ""
        unexpected.append(f"{column}{hint}")
    return tuple(unexpected)
