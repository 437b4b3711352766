"""Discovery of legacy files and the schema checks that decide whether a file is usable."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from papersys.errors import UsageError
from papersys.migrate.legacy import (
    DEFAULT_MODELS,
    GEN1_COLUMNS,
    GEN2_COLUMNS,
    discover,
    inspect_file,
    model_mapping,
    parse_model_spec,
)


def test_discover_pairs_generation_2_files_and_reports_the_rest(tmp_path: Path) -> None:
    names = ["2019.parquet", "sub/2018.parquet", "metadata_2024.parquet", "embedding_2024.parquet",
             "metadata_2025.parquet", "embedding_2023.parquet", "other.parquet", ".cache/2017.parquet"]  # fmt: skip
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"x": [1]}).write_parquet(path)
    found = discover(tmp_path)
    assert [(i.generation, i.year, i.label, i.vectors_label) for i in found.inputs] == [
        (1, 2018, "sub/2018.parquet", None),
        (1, 2019, "2019.parquet", None),
        (2, 2024, "metadata_2024.parquet", "embedding_2024.parquet"),
        (2, 2025, "metadata_2025.parquet", None),
    ]
    assert found.orphans == ("embedding_2023.parquet",) and found.ignored == ("other.parquet",)


def test_inspection_lists_problems_missing_and_unexpected_columns(tmp_path: Path) -> None:
    path = tmp_path / "2023.parquet"
    pl.DataFrame(
        {
            "id": ["2301.00001"], "title": [1], "abstract": ["a"], "categories": ["cs.LG"],
            "created": [date(2023, 1, 1)], "jasper_v1": [["x"]], "stella": [[1.0, 2.0]], "extra": [1],
        }
    ).write_parquet(path)  # fmt: skip
    got = inspect_file(path, GEN1_COLUMNS, DEFAULT_MODELS)
    assert got.problems == (
        "2023.parquet: column 'title' is Int64, expected string",
        "2023.parquet: vector column 'jasper_v1' is List(String), expected a list of floats",
    )
    assert got.missing == ("authors", "date", "updated", "license")
    assert got.unexpected == ("stella (vectors; pass --model stella=ALIAS to migrate them)", "extra")
    assert got.models == ()


def test_generation_2_metadata_accepts_dates_and_author_strings(tmp_path: Path) -> None:
    path = tmp_path / "metadata_2024.parquet"
    pl.DataFrame(
        {"id": ["2401.00001"], "title": ["t"], "abstract": ["a"], "categories": [["hep-th"]],
         "publish_date": [date(2024, 1, 1)], "update_date": [date(2024, 2, 1)], "authors": ["A B, C D"]}
    ).write_parquet(path)  # fmt: skip
    got = inspect_file(path, GEN2_COLUMNS, DEFAULT_MODELS, vectors=False)
    assert (got.problems, got.missing, got.unexpected) == ((), (), ())


def test_model_specs() -> None:
    spec = parse_model_spec("jasper_v1=jasper:NovaSearch/jasper_en_vision_language_v1")
    assert (spec.column, spec.alias, spec.name) == ("jasper_v1", "jasper", "NovaSearch/jasper_en_vision_language_v1")
    assert parse_model_spec("emb=e5").name is None
    assert model_mapping([]) == DEFAULT_MODELS
    with pytest.raises(UsageError, match="column 'x' is mapped twice"):
        model_mapping(["x=a:n", "x=b:n"])
    with pytest.raises(UsageError, match="expected LEGACY_COL=ALIAS"):
        parse_model_spec("=alias")
