"""Builders of small legacy (lyk/ArxivEmbedding) files: generation 1 year files and generation 2 pairs,
with either vector dtype and any poison a test wants."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from papersys.config import Config
    from papersys.migrate.report import MigrationReport

NAN = math.nan
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # the clock of every test migration


def vec(seed: int, dim: int, *, unit: bool = True) -> list[float]:
    """A deterministic vector (unit length unless ``unit`` is false: then of norm 3)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(dim).astype(np.float32)
    v = v / np.linalg.norm(v) * (1.0 if unit else 3.0)
    return [float(x) for x in v.astype(np.float32)]


def vector_type(kind: str, dim: int) -> pl.DataType:
    return pl.Array(pl.Float32, dim) if kind == "array" else pl.List(pl.Float32)


def gen1_row(arxiv_id: Any, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": arxiv_id,
        "title": f"Title of {arxiv_id}",
        "abstract": f"Abstract of {arxiv_id}.",
        "authors": ["Ada Lovelace", "Alan  Turing"],
        "date": "2023-01-02",
        "categories": ["cs.LG", "stat.ML"],
        "created": "2023-01-02",
        "updated": None,
        "license": None,
    }
    row.update(fields)
    return row


def write_gen1(
    path: Path, rows: list[dict[str, Any]], *, vectors: dict[str, tuple[str, int]], drop: tuple[str, ...] = ()
) -> Path:
    """``vectors``: column -> ("array" | "list", dim); each row gives its vector (or None) under the column."""
    schema: dict[str, pl.DataType] = {
        "id": pl.String(), "title": pl.String(), "abstract": pl.String(), "authors": pl.List(pl.String()),
        "date": pl.String(), "categories": pl.List(pl.String()), "created": pl.String(), "updated": pl.String(),
        "license": pl.String(),
    }  # fmt: skip
    if rows and not isinstance(rows[0]["id"], str):
        schema["id"] = pl.Float64()
    for column, (kind, dim) in vectors.items():
        schema[column] = vector_type(kind, dim)
    data = {name: [r.get(name) for r in rows] for name in schema}
    frame = pl.DataFrame(data, schema=schema, strict=False).drop(list(drop))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def gen2_row(arxiv_id: str, **fields: Any) -> dict[str, Any]:
    from datetime import date

    row: dict[str, Any] = {
        "id": arxiv_id,
        "title": f"Title of {arxiv_id}",
        "abstract": f"Abstract of {arxiv_id}.",
        "publish_date": date(2024, 1, 3),
        "update_date": date(2024, 1, 3),
        "categories": ["hep-th"],
        "authors": "Ada Lovelace, Alan Turing",
    }
    row.update(fields)
    return row


def write_gen2(
    directory: Path, year: int, rows: list[dict[str, Any]], vectors: list[tuple[Any, list[float] | None]], dim: int
) -> tuple[Path, Path]:
    """``metadata_<year>.parquet`` and ``embedding_<year>.parquet`` (vectors: (id, vector) in file order)."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = pl.DataFrame(
        rows,
        schema={"id": pl.String, "title": pl.String, "abstract": pl.String, "publish_date": pl.Date,
                "update_date": pl.Date, "categories": pl.List(pl.String), "authors": pl.String},
    )  # fmt: skip
    meta_path = directory / f"metadata_{year}.parquet"
    meta.write_parquet(meta_path)
    id_type = pl.Float64 if vectors and not isinstance(vectors[0][0], str) else pl.String
    emb = pl.DataFrame(
        {"id": [i for i, _ in vectors], "embedding": [v for _, v in vectors]},
        schema={"id": id_type, "embedding": pl.Array(pl.Float32, dim)},
    )
    emb_path = directory / f"embedding_{year}.parquet"
    emb.write_parquet(emb_path)
    return meta_path, emb_path


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest); {} when ``root`` does not exist."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# the full fixture ---------------------------------------------------------------------------------------------
J, C, G = 8, 12, 6  # fixture dims of jasper_v1, conan_v1 and generation 2's embedding
DIMS = {"jasper_v1": J, "conan_v1": C, "gemini_embedding_001": G}
POISONED = {  # per model: the papers whose winning copy had no usable vector
    "jasper_v1": {"2301.00004", "2301.03300", "2212.00009", "2301.00008", "2203.00003"},
    "conan_v1": {"2301.00004", "2301.03300", "2301.00008"},
    "gemini_embedding_001": {"2401.00002", "2401.00003", "2401.00005"},
}

GEN1_PAPERS = {"2301.00001", "2301.00002", "2301.00003", "2301.00004", "2301.03300", "2212.00009", "2301.00008",
               "2301.00010", "2201.00001", "2203.00003", "hep-th/0601001"}  # fmt: skip
GEN2_PAPERS = {"2401.00001", "2401.00002", "2401.00003", "2401.00040", "2401.00005"}
# what backlog must show after migrating the fixture into an empty store: the poisoned papers, and the papers of
# the other generation (no vector of that model exists for them at all)
GAPS = {
    "jasper_v1": POISONED["jasper_v1"] | GEN2_PAPERS,
    "conan_v1": POISONED["conan_v1"] | GEN2_PAPERS,
    "gemini_embedding_001": POISONED["gemini_embedding_001"] | GEN1_PAPERS,
}


def migrate(config: Config, legacy_dir: Path, **options: Any) -> MigrationReport:
    """``service.migrate_legacy`` with the tests' fixed clock."""
    from papersys import service
    from papersys.runtime import Runtime

    return service.migrate_legacy(config, legacy_dir, runtime=Runtime(clock=lambda: NOW), **options)


def build_fixture(root: Path) -> dict[str, dict[str, list[float]]]:
    """Every poison of the issue in two generation-1 years (both vector dtypes), a generation-2 pair, an
    unusable file, a non-Parquet file and a stray file. Returns the valid vectors a migration must store,
    per alias and id (the rows and their fates are tabled in tests/migrate/test_migrate.py)."""
    v = {
        "a": (vec(1, J), vec(2, C, unit=False)),
        "b": (vec(3, J), vec(4, C, unit=False)),
        "c": (None, vec(5, C, unit=False)),
        "g": ([0.5, float("inf"), *vec(6, J)[2:]], vec(7, C, unit=False)),
        "i": (vec(8, J), vec(9, C, unit=False)),
        "k": (vec(10, J), vec(11, C, unit=False)),
        "l": (vec(12, J), vec(13, C, unit=False)),
        "m": (vec(14, J), vec(15, C, unit=False)),
        "n": (vec(16, 6), vec(17, C, unit=False)),
        "o": (vec(18, J), vec(19, C, unit=False)),
    }
    y23 = [
        gen1_row("2301.00001", title="Deep\nLearning ", abstract=" We  study\nthings.", jasper_v1=v["a"][0],
                 conan_v1=v["a"][1]),
        gen1_row("2301.00002v2", jasper_v1=v["b"][0], conan_v1=v["b"][1], updated="2023-01-09", date="2023-01-09"),
        gen1_row("2301.00003", jasper_v1=v["c"][0], conan_v1=v["c"][1]),
        gen1_row("2301.00004", jasper_v1=[0.0] * J, conan_v1=[NAN] * C),
        gen1_row("2301.033", jasper_v1=[NAN] * J, conan_v1=vec(20, 10)),
        gen1_row("junk", jasper_v1=vec(21, J), conan_v1=vec(22, C)),
        gen1_row("2212.00009", created="2022-12-20", updated="2023-01-05", date="2023-01-05", jasper_v1=v["g"][0],
                 conan_v1=v["g"][1]),
        gen1_row("2301.00008", jasper_v1=None, conan_v1=None, license="http://creativecommons.org/licenses/by/4.0/"),
        gen1_row("2301.00010", jasper_v1=v["i"][0], conan_v1=v["i"][1]),
        gen1_row("2301.00011", created=None, date=None, jasper_v1=vec(23, J), conan_v1=vec(24, C)),
    ]  # fmt: skip
    write_gen1(root / "2023.parquet", y23, vectors={"jasper_v1": ("array", J), "conan_v1": ("list", C)})
    y22 = [
        gen1_row("2301.00003", updated="2023-05-01", date="2023-05-01", jasper_v1=v["k"][0], conan_v1=v["k"][1]),
        gen1_row("2212.00009", created="2022-12-20", date="2022-12-20", jasper_v1=v["l"][0], conan_v1=v["l"][1]),
        gen1_row("2201.00001", created="2022-01-02", date="2022-01-02", categories=["math.AG", "math.AG", "hep-th"],
                 jasper_v1=v["m"][0], conan_v1=v["m"][1]),
        gen1_row("2203.00003", created="2022-03-02", date="2022-03-02", jasper_v1=v["n"][0], conan_v1=v["n"][1]),
        gen1_row("hep-th/0601001v1", created="2006-01-02", date="2006-01-02", jasper_v1=v["o"][0],
                 conan_v1=v["o"][1]),
    ]  # fmt: skip
    write_gen1(root / "2022.parquet", y22, vectors={"jasper_v1": ("list", J), "conan_v1": ("array", C)})
    write_gen1(root / "2021.parquet", [gen1_row("2101.00001", jasper_v1=vec(25, J), conan_v1=vec(26, C))],
               vectors={"jasper_v1": ("array", J), "conan_v1": ("array", C)}, drop=("title",))  # fmt: skip
    (root / "2020.parquet").write_bytes(b"PAR1 this is not a parquet file")
    pl.DataFrame({"x": [1]}).write_parquet(root / "notes.parquet")
    p, s = vec(30, G), vec(31, G)
    write_gen2(
        root / "gen2",
        2024,
        [gen2_row(i) for i in ("2401.00001", "2401.00002", "2401.00003", "2401.00040", "2401.00005")],
        [(2401.00001, p), (2401.00002, [0.0] * G), (2401.0004, s), (2401.00005, [NAN] * G), (2401.99999, vec(32, G))],
        G,
    )
    return {
        "jasper_v1": {"2301.00001": v["a"][0], "2301.00002": v["b"][0], "2301.00010": v["i"][0],
                      "2301.00003": v["k"][0], "2201.00001": v["m"][0], "hep-th/0601001": v["o"][0]},
        "conan_v1": {"2301.00001": v["a"][1], "2301.00002": v["b"][1], "2301.00010": v["i"][1],
                     "2212.00009": v["g"][1], "2301.00003": v["k"][1], "2201.00001": v["m"][1],
                     "2203.00003": v["n"][1], "hep-th/0601001": v["o"][1]},
        "gemini_embedding_001": {"2401.00001": p, "2401.00040": s},
    }  # fmt: skip
