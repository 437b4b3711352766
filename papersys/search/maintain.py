"""Index upkeep: merging the tail of new rows into the ANN index, the dead-row list, sweeping unnamed files."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from papersys.config import SearchConfig
from papersys.faults import crash_point
from papersys.runtime import Runtime, cpu_threads
from papersys.search import ann as ann_set
from papersys.search.manifest import IndexManifest
from papersys.search.rows import RowFiles
from papersys.store.atomic import atomic_path, sweep_temp_files
from papersys.store.layout import Layout

log = logging.getLogger(__name__)


def wants_merge(settings: SearchConfig, *, rows: int, ann_rows: int) -> bool:
    """Whether the rows added since the ANN index was last merged (searched exactly meanwhile) go in now:
    all of them once the index is big enough for one, then whenever more than ``tail_rows`` have piled up."""
    return rows >= settings.ann_min_rows and rows - ann_rows > (settings.tail_rows if ann_rows else 0)


def dead_rows(layout: Layout, manifest: IndexManifest) -> npt.NDArray[np.int64]:
    if not manifest.dead_seq:
        return np.empty(0, dtype=np.int64)
    path = layout.vector_index_dead(manifest.model, manifest.generation, manifest.dead_seq)
    return np.asarray(np.load(path), dtype=np.int64)


def save_dead(path: Any, rows: npt.NDArray[np.int64]) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, np.asarray(rows, dtype=np.int64))


def merge_ann(layout: Layout, manifest: IndexManifest, *, runtime: Runtime) -> IndexManifest:
    """A new ANN index holding every live row: the old one (dead rows removed) plus the tail, or trained
    afresh when there is none yet or the rows have outgrown its lists."""
    m = manifest
    files = RowFiles(layout.vector_index_rows(m.model, m.generation), m.dim)
    vectors = files.open(m.counts)["vectors"]
    dead = dead_rows(layout, m)
    live = np.ones(m.rows, dtype=bool)
    live[dead] = False
    if not live.any():  # nothing to index: every row is dead (searched exactly, as an empty tail)
        return m.touched(ann_seq=0, ann_rows=0, ann_lists=0)
    ann_set.set_threads(cpu_threads())
    index = None
    if m.ann_seq and ann_set.needs_training(m.ann_lists, m.live, m.params):
        log.info("vector index of %s: %d rows outgrew %d lists, training again", m.model, m.live, m.ann_lists)
    elif m.ann_seq:
        index = ann_set.load(layout.vector_index_ann(m.model, m.generation, m.ann_seq), writable=True)
        ann_set.remove_rows(index, dead[dead < m.ann_rows])
    if index is None:
        index = _trained(vectors, np.flatnonzero(live).astype(np.int64), m, runtime=runtime)
        rows = np.flatnonzero(live).astype(np.int64)
    else:
        rows = np.flatnonzero(live[m.ann_rows :]).astype(np.int64) + m.ann_rows
    task = runtime.progress.task(f"index {m.model}: add", total=len(rows), unit="vectors")

    def batch(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        runtime.check_cancel()
        return np.ascontiguousarray(vectors[keys], dtype=np.float32)

    ann_set.add_rows(index, rows, batch, on_batch=task.advance)
    task.close()
    seq = m.ann_seq + 1
    ann_set.save(index, layout.vector_index_ann(m.model, m.generation, seq))
    crash_point("index.ann_saved")  # the new ANN index is on disk, the manifest still names the old one
    lists = ann_set.list_count(index)
    log.info("vector index of %s: ANN index %d holds %d rows in %d lists", m.model, seq, ann_set.size(index), lists)
    return m.touched(ann_seq=seq, ann_rows=m.rows, ann_lists=lists)


def _trained(vectors: Any, live: npt.NDArray[np.int64], m: IndexManifest, *, runtime: Runtime) -> Any:
    """An empty ANN index with lists trained on an even sample of the live rows."""
    lists = ann_set.lists_for(len(live), m.params)
    want = min(len(live), lists * ann_set.TRAIN_PER_LIST)
    sample = np.sort(np.random.default_rng(1234).choice(live, size=want, replace=False)) if want else live[:0]
    runtime.check_cancel()
    task = runtime.progress.task(f"index {m.model}: train {lists} lists on {want:,} vectors", total=1, unit="steps")
    index = ann_set.train(m.dim, m.params, np.asarray(vectors[sample], dtype=np.float32), lists)
    task.advance()
    task.close()
    return index


def sweep_index(layout: Layout, manifest: IndexManifest) -> int:
    """Delete the files of ``manifest``'s model index that it does not name (old generations, ANN indexes,
    dead lists, temp files of killed writers); returns how many."""
    m = manifest
    keep = set(layout.vector_index_rows(m.model, m.generation).values())
    keep.add(layout.vector_index_manifest(m.model))
    if m.ann_seq:
        keep.add(layout.vector_index_ann(m.model, m.generation, m.ann_seq))
    if m.dead_seq:
        keep.add(layout.vector_index_dead(m.model, m.generation, m.dead_seq))
    directory = layout.vector_index_dir(m.model)
    removed = sweep_temp_files(directory)
    for entry in directory.iterdir():
        if entry.is_file() and entry not in keep and not entry.name.startswith("."):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
