"""After the store changes: bring each model's vector index and query encoder up to date (the jobs that
write vectors call this while they still hold the model's embeddings lock)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from papersys.config import Config, ModelConfig
from papersys.errors import EngineError, StoreError
from papersys.runtime import Runtime
from papersys.search.build import update_index
from papersys.search.report import IndexJobReport
from papersys.store.layout import Layout
from papersys.store.metadata import read_year
from papersys.store.storage import storage_guard

log = logging.getLogger(__name__)
CHECK_TEXTS = 64  # texts the exported encoder must reproduce (cosine ≥ 0.999) before it is used


def refresh_indexes(
    config: Config, models: Sequence[ModelConfig], *, rebuild: bool = False, runtime: Runtime
) -> IndexJobReport:
    layout = Layout(config.data_dir)
    reports = []
    for model in models:
        runtime.check_cancel()
        with storage_guard(layout.vector_index_dir(model.alias), "write the vector index"):
            report = update_index(layout, model, settings=config.search, rebuild=rebuild, runtime=runtime)
        if report.action != "no-vectors":
            report = replace(report, encoder=refresh_encoder(layout, model))
        log.info(report.summary_line())
        reports.append(report)
    return IndexJobReport(tuple(reports))


def refresh_encoder(layout: Layout, model: ModelConfig) -> str:
    """Export the model's query encoder when there is none for its current config; say what happened."""
    from papersys.search.encoder import export_query_encoder

    directory = layout.query_encoder_dir(model.alias)
    if model.backend != "sentence_transformer":
        return "not exported (only sentence-transformers models export; queries use the model's engine)"
    if _encoder_fits(directory, model):
        return "current"
    try:
        with storage_guard(directory, "export the query encoder"):  # a full disk: reported, never fatal
            export_query_encoder(model, directory, check_texts=_sample_texts(layout, CHECK_TEXTS))
    except (EngineError, StoreError) as exc:
        log.warning("query encoder of %s not exported, queries load the full model instead: %s", model.alias, exc)
        return f"unavailable: {exc}"
    return "exported"


def _encoder_fits(directory: Path, model: ModelConfig) -> bool:
    from papersys.search.encoder_dir import ENCODER_JSON, EncoderInfo, resolve

    try:
        current = resolve(directory)
        return current is not None and not EncoderInfo.from_json(current / ENCODER_JSON).differences(model)
    except (StoreError, OSError):
        return False


def _sample_texts(layout: Layout, count: int) -> list[str]:
    """Real titles and abstracts from the newest years (the texts an export is checked on)."""
    texts: list[str] = []
    for year in reversed(layout.metadata_years()):
        frame = read_year(layout, year, columns=["title", "abstract"]).head(count)
        texts += [f"{t}\n{a}" for t, a in frame.iter_rows()] + list(frame["title"])
        if len(texts) >= count:
            break
    return texts[:count] or ["a query about papers"]
