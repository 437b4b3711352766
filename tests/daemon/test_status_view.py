"""The rich status view a terminal gets: every table shows what the report holds."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console
from support.embedding import add_papers

from papersys import service
from papersys.cli.status_view import render_status
from papersys.config import config_from_mapping
from papersys.store.atomic import write_json
from papersys.store.layout import Layout
from papersys.store.state import Checkpoint, HarvestState, save_state


def test_render_status_shows_years_coverage_runs_and_daemon(tmp_path: Path, engine_factory: object) -> None:
    config = config_from_mapping({"data_dir": "data"}, base_dir=tmp_path)
    layout = Layout(config.data_dir)
    add_papers(layout)
    service.embed_autopatch(config, engine_factory=engine_factory)  # type: ignore[arg-type]
    save_state(
        layout, HarvestState().with_checkpoint("all", Checkpoint(date(2024, 5, 1), datetime(2024, 5, 1, 4, tzinfo=UTC)))
    )
    write_json({"pid": 2**22 + 7, "started": "2024-01-01T00:00:00+00:00", "next_runs": {}}, layout.daemon_state)
    report = service.status(config)
    console = Console(record=True, width=200, color_system=None)
    render_status(report, console)
    text = console.export_text()
    assert f"papers: {report.total_papers:,}" in text
    (model,) = report.models
    assert model.valid == report.total_papers  # every paper embedded: the gaps column is all zeros
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if "│" in line]
    for year, count in report.papers.items():
        assert [str(year), f"{count:,}", f"{count:,}", "0"] in rows  # year, papers, minilm valid, minilm gaps
    assert "minilm" in text and "100.0%" in text
    assert rows[[r[0] for r in rows].index("minilm")][-1] == f"{report.total_papers:,}"  # indexed by autopatch
    assert "watermark all" in text and "2024-05-01" in text
    assert "last embed-autopatch" in text and "ok" in text
    assert f"stale daemon.json of pid {2**22 + 7}" in text
