"""`papersys status`: empty store, populated store (real MiniLM vectors), stale daemon.json, damage."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from support.builders import frame, row
from support.embedding import PAPERS, add_papers

from papersys import service
from papersys.config import Config, config_from_mapping
from papersys.store.atomic import write_json
from papersys.store.jobs import append_job
from papersys.store.layout import Layout
from papersys.store.metadata import upsert
from papersys.store.state import Checkpoint, HarvestState, save_state


def config_at(tmp_path: Path) -> Config:
    return config_from_mapping({"data_dir": "data"}, base_dir=tmp_path)


def run_status(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "papersys", "--data-dir", str(config.data_dir), "status", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_of_an_empty_data_dir(tmp_path: Path) -> None:
    config = config_at(tmp_path)
    report = service.status(config)
    assert report.total_papers == 0 and report.papers == {}
    assert report.daemon.state == "stopped"
    assert report.watermarks == {} and report.last_runs == {}
    assert [(m.alias, m.papers, m.valid) for m in report.models] == [("minilm", 0, 0)]
    assert report.problems == ()
    assert "harvest: never ran" in report.summary()
    proc = run_status(config, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["total_papers"] == 0 and data["daemon"]["state"] == "stopped"
    assert not config.data_dir.exists()  # status wrote nothing


def test_status_of_a_populated_store(tmp_path: Path, engine_factory: object) -> None:
    config = config_at(tmp_path)
    layout = Layout(config.data_dir)
    add_papers(layout)
    service.embed_autopatch(config, engine_factory=engine_factory)  # type: ignore[arg-type]
    # one paper's title changes after it was embedded → stale; one new paper → missing
    upsert(
        layout,
        frame(
            row("2401.00003", title="A new title", abstract=PAPERS[2][2], datestamp=date(2024, 5, 1)),
            row("2401.00009", title="Brand new", abstract="Not embedded yet."),
        ),
    )
    save_state(
        layout, HarvestState().with_checkpoint("all", Checkpoint(date(2024, 5, 1), datetime(2024, 5, 1, 4, tzinfo=UTC)))
    )
    report = service.status(config)
    assert report.papers == {1999: 1, 2023: 2, 2024: 4}
    assert report.total_papers == 7
    (model,) = report.models
    assert (model.papers, model.valid, model.stale, model.missing, model.invalid) == (7, 5, 1, 1, 0)
    assert model.years[2024] == {"papers": 4, "valid": 2, "missing": 1, "invalid": 0, "stale": 1, "orphans": 0}
    assert report.watermarks["all"]["watermark"] == "2024-05-01"
    assert report.last_runs["embed-autopatch"]["outcome"] == "ok"
    assert report.disk_bytes["metadata"] > 0 and report.disk_bytes["embeddings/minilm"] > 0
    assert report.disk_bytes["total"] >= sum(v for k, v in report.disk_bytes.items() if k != "total")
    proc = run_status(config, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["papers"] == {"1999": 1, "2023": 2, "2024": 4}
    assert data["models"][0]["stale"] == 1 and data["models"][0]["coverage"] == round(5 / 7, 6)
    plain = run_status(config)
    assert "model minilm: 5/7 valid (71.4%); missing 1, stale 1, invalid 0, orphans 0" in plain.stdout
    assert "harvest all: watermark 2024-05-01" in plain.stdout


def test_status_reads_daemon_state_running_and_stale(tmp_path: Path) -> None:
    config = config_at(tmp_path)
    layout = Layout(config.data_dir)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_json({"pid": int(dead.stdout), "started": "2024-01-01T00:00:00+00:00", "next_runs": {}}, layout.daemon_state)
    stale = service.status(config).daemon
    assert stale.state == "stale" and stale.pid == int(dead.stdout)
    # a live process whose command line names papersys counts as the running daemon
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "papersys", "serve"])
    try:
        write_json(
            {
                "pid": live.pid,
                "started": "2024-01-01T00:00:00+00:00",
                "next_runs": {"ingest": "2024-01-02T03:00:00+00:00"},
                "metrics": "http://127.0.0.1:9464/metrics",
            },
            layout.daemon_state,
        )
        running = service.status(config).daemon
        assert running.state == "running" and running.next_runs == {"ingest": "2024-01-02T03:00:00+00:00"}
        assert any("daemon: running (pid" in line for line in service.status(config).summary())
    finally:
        live.kill()
        live.wait()
    # a live pid that is not papersys (the daemon died and the pid was reused) is not the daemon
    other = subprocess.Popen(["sleep", "60"])
    try:
        write_json({"pid": other.pid, "started": "x", "next_runs": {}}, layout.daemon_state)
        assert service.status(config).daemon.state == "stale"
    finally:
        other.kill()
        other.wait()


def test_status_reports_damage_and_exits_1(tmp_path: Path) -> None:
    config = config_at(tmp_path)
    layout = Layout(config.data_dir)
    upsert(layout, frame(row("2401.00001"), row("2312.00001")))
    append_job(layout.jobs_log, {"job": "ingest", "outcome": "ok", "end": "2024-01-01T00:00:00+00:00"})
    with layout.jobs_log.open("a") as fh:
        fh.write('{"job": "ingest", "outc')  # torn by a kill
    torn = layout.metadata_file(2024)
    torn.write_bytes(torn.read_bytes()[:40])
    report = service.status(config)
    assert report.papers == {2023: 1}
    assert any("2024.parquet: not a readable Parquet file" in p for p in report.problems)
    assert report.last_runs["ingest"]["outcome"] == "ok"
    proc = run_status(config)
    assert proc.returncode == 1
    assert "problem:" in proc.stdout and "Traceback" not in proc.stderr


def test_status_json_lists_every_documented_key(tmp_path: Path) -> None:
    data = service.status(config_at(tmp_path)).to_dict()
    assert set(data) == {
        "data_dir",
        "generated_at",
        "papers",
        "total_papers",
        "deleted",
        "models",
        "watermarks",
        "window_in_progress",
        "last_runs",
        "daemon",
        "disk_bytes",
        "text_index",
        "freshness",
        "audit",
        "problems",
        "seconds",
    }
    assert set(data["text_index"]) == {"indexed", "current", "changed_years", "updated_at", "behind"}
    assert pl.DataFrame([data["models"][0]]).columns[:3] == ["alias", "name", "enabled"]


def test_write_jobs_refresh_the_coverage_cache_so_status_recounts_nothing(
    tmp_path: Path, engine_factory: object
) -> None:
    from support.oai_server import OAIServer
    from support.papers import synthetic_papers

    from papersys.embed.coverage import model_store, signature
    from papersys.embed.manifest import check_manifest
    from papersys.store.atomic import file_stat, read_json

    papers = synthetic_papers(30, seed=4, start=date(2024, 3, 1), days=5)
    with OAIServer(papers, page_size=10) as server:
        config = config_from_mapping(
            {"data_dir": "data", "ingest": {"base_url": server.url, "request_interval_s": 0.0}}, base_dir=tmp_path
        )
        layout = Layout(config.data_dir)
        add_papers(layout)
        service.embed_autopatch(config, engine_factory=engine_factory)  # type: ignore[arg-type]
        service.ingest(config, start=date(2024, 3, 1), until=date(2024, 3, 10))
    model = config.embedding.models[0]
    emb = model_store(layout, model, check_manifest(layout, model))
    cache = read_json(layout.coverage_cache(model.alias))["years"]
    for year in layout.metadata_years():  # every year's cached signature is the current one
        current = signature(emb, model, year, file_stat(layout.metadata_file(year)))
        assert cache[str(year)]["signature"] == current, year
    report = service.status(config)
    assert report.models[0].missing == report.total_papers - len(PAPERS) > 0
