"""Index upkeep: merging the tail of new rows into the graph, the dead-row list, sweeping unnamed files."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from papersys.config import SearchConfig
from papersys.faults import crash_point
from papersys.runtime import Runtime, cpu_threads
from papersys.search import graph as graphs
from papersys.search.manifest import IndexManifest
from papersys.search.rows import RowFiles
from papersys.store.atomic import atomic_path, sweep_temp_files
from papersys.store.layout import Layout

log = logging.getLogger(__name__)


def wants_merge(settings: SearchConfig, *, rows: int, graph_rows: int) -> bool:
    """Whether the rows added since the graph was last merged (searched exactly meanwhile) go in now: all
    of them once the index is big enough for a graph, then whenever more than ``tail_rows`` have piled up."""
    return rows >= settings.graph_min_rows and rows - graph_rows > (settings.tail_rows if graph_rows else 0)


def dead_rows(layout: Layout, manifest: IndexManifest) -> npt.NDArray[np.int64]:
    if not manifest.dead_seq:
        return np.empty(0, dtype=np.int64)
    path = layout.vector_index_dead(manifest.model, manifest.generation, manifest.dead_seq)
    return np.asarray(np.load(path), dtype=np.int64)


def save_dead(path: Any, rows: npt.NDArray[np.int64]) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, np.asarray(rows, dtype=np.int64))


def merge_graph(layout: Layout, manifest: IndexManifest, *, runtime: Runtime) -> IndexManifest:
    """A new graph holding every live row: the old graph (dead rows removed) plus the tail, or built afresh."""
    m = manifest
    files = RowFiles(layout.vector_index_rows(m.model, m.generation), m.dim)
    columns = files.open(m.counts)
    vectors = columns["vectors"]
    dead = dead_rows(layout, m)
    if m.graph_seq:
        graph = graphs.load_graph(
            layout.vector_index_graph(m.model, m.generation, m.graph_seq), writable=True, params=m.params
        )
        graphs.remove_rows(graph, dead[dead < m.graph_rows])
    else:
        graph = graphs.new_graph(m.dim, m.params)
    live = np.ones(m.rows - m.graph_rows, dtype=bool)
    tail_dead = dead[dead >= m.graph_rows] - m.graph_rows
    live[tail_dead] = False
    rows = np.flatnonzero(live).astype(np.int64) + m.graph_rows
    task = runtime.progress.task(f"index {m.model}: graph", total=len(rows), unit="vectors")

    def batch(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        runtime.check_cancel()
        return np.ascontiguousarray(vectors[keys], dtype=np.float32)

    graphs.add_rows(graph, rows, batch, threads=cpu_threads(), on_batch=task.advance)
    task.close()
    seq = m.graph_seq + 1
    graphs.save_graph(graph, layout.vector_index_graph(m.model, m.generation, seq))
    crash_point("index.graph_saved")  # the new graph is on disk, the manifest still names the old one
    log.info("vector index of %s: graph %d holds %d rows", m.model, seq, len(graph))
    return m.touched(graph_seq=seq, graph_rows=m.rows)


def sweep_index(layout: Layout, manifest: IndexManifest) -> int:
    """Delete the files of ``manifest``'s model index that it does not name (old generations, graphs,
    dead lists, temp files of killed writers); returns how many."""
    m = manifest
    keep = set(layout.vector_index_rows(m.model, m.generation).values())
    keep.add(layout.vector_index_manifest(m.model))
    if m.graph_seq:
        keep.add(layout.vector_index_graph(m.model, m.generation, m.graph_seq))
    if m.dead_seq:
        keep.add(layout.vector_index_dead(m.model, m.generation, m.dead_seq))
    directory = layout.vector_index_dir(m.model)
    removed = sweep_temp_files(directory)
    for entry in directory.iterdir():
        if entry.is_file() and entry not in keep and not entry.name.startswith("."):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
