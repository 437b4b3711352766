"""Layout: the file-name patterns it formats are the ones it parses back."""

from __future__ import annotations

from pathlib import Path

from papersys.store.layout import Layout, PendingPart


def test_part_files_are_listed_in_write_order_and_foreign_names_are_ignored(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    written = [layout.embedding_part_file("m", year, seq) for year, seq in [(2024, 10), (2023, 2), (2024, 9)]]
    assert [p.name for p in written] == ["2024-000010.parquet", "2023-000002.parquet", "2024-000009.parquet"]
    pending = layout.embedding_pending_dir("m")
    pending.mkdir(parents=True)
    for path in written:
        path.touch()
    for name in ("2024-1.parquet", ".2024-000011.parquet.123.abcdef12.tmp", "notes.txt", "2024.parquet"):
        (pending / name).touch()
    assert layout.embedding_parts("m") == [
        PendingPart(2023, 2, written[1]),
        PendingPart(2024, 9, written[2]),
        PendingPart(2024, 10, written[0]),
    ]
    assert [p.seq for p in layout.embedding_parts("m", 2024)] == [9, 10]
    assert layout.embedding_parts("m", 2022) == [] and layout.embedding_parts("other") == []


def test_year_files_round_trip(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    for path in (layout.metadata_file(2001), layout.embedding_file("m", 1999), layout.embedding_file("m", 2024)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    (layout.embeddings_dir("m") / "manifest.json").touch()
    assert layout.metadata_years() == [2001]
    assert layout.embedding_years("m") == [1999, 2024]


def test_top_dirs_are_the_design_layout(tmp_path: Path) -> None:
    assert [p.relative_to(tmp_path).as_posix() for p in Layout(tmp_path).top_dirs] == [
        "metadata",
        "embeddings",
        "state",
        ".locks",
    ]
