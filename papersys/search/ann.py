"""The approximate-nearest-neighbour index (faiss IVF, 8-bit scalar quantisation): the one module importing faiss.

An inverted-file index: k-means centroids ("lists") trained on a sample of the vectors, and every vector
stored, quantised to one byte per dimension, in the list of its nearest centroid. A query scans the
``probes`` lists nearest to it. Keys are row numbers of the index's row files; the index only proposes
candidates, and exact cosine scores come from the float32 rows afterwards. Searchers memory-map the saved
file read-only, so a query touches only the lists it scans.

Why IVF and not an HNSW graph: on 3 M vectors shaped like real embeddings (many tight topics) an HNSW
graph with 16 links reached recall@10 0.92 after 20 minutes of building on 2 cores, while IVF-SQ8 reached
1.00 after about 8 (devdoc/search.md); IVF also filters inside the scan (an id selector), adds new vectors
without rebuilding, and its file maps like a flat array.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux), or an empty set where /proc/cpuinfo cannot tell."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def openblas_core(flags: set[str]) -> str | None:
    """The OpenBLAS kernel family this CPU can run, by its features (None: leave OpenBLAS to decide).

    faiss-cpu bundles OpenBLAS 0.3.15, which does not recognise recent Xeons (a cloud VM's "Intel Xeon
    Processor") and falls back to its SSE3 "Prescott" kernels: k-means training, most of a build, ran
    4.4x slower here than with the SkylakeX kernels the CPU supports."""
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


# faiss's loader logs at INFO which SIMD build it tries ("Could not load library with AVX512 support…"
# when the wheel has one build): noise on every command's stderr, not news
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
if "OPENBLAS_CORETYPE" not in os.environ:  # read once, when faiss loads its OpenBLAS below
    _core = openblas_core(cpu_flags())
    if _core is not None:
        os.environ["OPENBLAS_CORETYPE"] = _core

import faiss  # noqa: E402  (after OPENBLAS_CORETYPE is set)
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from papersys.config import SearchConfig  # noqa: E402
from papersys.errors import StoreError  # noqa: E402

METRIC = "cos"  # inner product of unit vectors
ADD_BATCH = 65_536  # rows per add() call: progress and cancellation points during a build
TRAIN_PER_LIST = 40  # k-means sample: vectors per list (faiss wants at least 39)
RETRAIN_GROWTH = 2  # retrain the lists when the rows outgrow the trained list count this many times
QUANTIZERS = {"sq8": "QT_8bit", "f16": "QT_fp16", "f32": None}

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AnnParams:
    """IVF parameters (recorded in the index manifest; ``lists`` and ``quantization`` take a rebuild)."""

    quantization: str = "sq8"
    lists: int = 0  # 0: chosen from the number of rows when the index is trained (see ``lists_for``)
    probes: int = 64  # lists scanned per query; a query-time setting

    @classmethod
    def of(cls, settings: SearchConfig) -> AnnParams:
        return cls(settings.quantization, settings.lists, settings.probes)

    def to_dict(self) -> dict[str, Any]:
        return {"quantization": self.quantization, "lists": self.lists, "probes": self.probes}


def lists_for(rows: int, params: AnnParams) -> int:
    """How many lists to train for ``rows`` vectors: the configured number, else 2·√rows rounded to a power
    of two (4,096 at 3 M), never more than leaves ``TRAIN_PER_LIST`` vectors to train each."""
    wanted = params.lists or 2 ** round(math.log2(max(2 * math.sqrt(max(rows, 1)), 1)))
    return max(1, min(wanted, rows // TRAIN_PER_LIST, 65_536))


def needs_training(trained: int, rows: int, params: AnnParams) -> bool:
    """Whether ``rows`` vectors have outgrown the ``trained`` lists of an index (or the settings changed)."""
    wanted = lists_for(rows, params)
    return wanted != trained if params.lists else wanted >= trained * RETRAIN_GROWTH


def library_version() -> str:
    return f"faiss {faiss.__version__}"


def set_threads(threads: int) -> None:
    faiss.omp_set_num_threads(max(1, threads))


def train(dim: int, params: AnnParams, sample: npt.NDArray[np.float32], lists: int) -> Any:
    """An empty index whose ``lists`` centroids (and quantiser ranges) are trained on ``sample``."""
    quantizer = faiss.IndexFlatIP(dim)
    qtype = QUANTIZERS[params.quantization]
    ann: Any
    if qtype is None:
        ann = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    else:
        qt = getattr(faiss.ScalarQuantizer, qtype)
        ann = faiss.IndexIVFScalarQuantizer(quantizer, dim, lists, qt, faiss.METRIC_INNER_PRODUCT)
    ann.cp.niter = 10
    ann.cp.min_points_per_centroid = 1  # small indexes: fewer points per list is fine, and no warning
    ann.cp.seed = 1234
    ann.train(np.ascontiguousarray(sample, dtype=np.float32))
    return ann


def add_rows(
    ann: Any,
    rows: Rows,
    vectors: Callable[[Rows], npt.NDArray[np.float32]],
    *,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Add ``rows`` (keys) with their vectors, fetched batch by batch from ``vectors(rows)``."""
    for start in range(0, len(rows), ADD_BATCH):
        keys = rows[start : start + ADD_BATCH]
        ann.add_with_ids(np.ascontiguousarray(vectors(keys), dtype=np.float32), keys.astype(np.int64))
        if on_batch is not None:
            on_batch(len(keys))


def remove_rows(ann: Any, rows: Rows) -> None:
    if len(rows):
        ann.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(rows, dtype=np.int64)))


def save(ann: Any, path: Path) -> None:
    """Write the index to ``path`` (a new file name: the manifest that names it is the commit)."""
    from papersys.store.atomic import atomic_path

    with atomic_path(path) as tmp:
        faiss.write_index(ann, str(tmp))


def load(path: Path, *, writable: bool) -> Any:
    """The index at ``path``: memory-mapped for searching, or read into memory to be changed."""
    if not path.is_file():
        raise StoreError(path, "is missing; rebuild the index with `papersys index --rebuild`")
    try:
        ann = faiss.read_index(str(path), 0 if writable else faiss.IO_FLAG_MMAP)
    except RuntimeError as exc:  # faiss reports a bad file as a RuntimeError with its own text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(path, f"cannot open the vector index ({first}); run `papersys index --rebuild`") from exc
    if not isinstance(faiss.extract_index_ivf(ann), faiss.IndexIVF):  # pragma: no cover - extract raises first
        raise StoreError(path, "is not an IVF vector index; run `papersys index --rebuild`")
    return ann


def size(ann: Any) -> int:
    return int(ann.ntotal)


def search(
    ann: Any, query: npt.NDArray[np.float32], count: int, *, probes: int, allowed: npt.NDArray[np.uint8] | None = None
) -> Rows:
    """Row numbers of up to ``count`` approximate neighbours of ``query``, scanning ``probes`` lists; with
    ``allowed`` (a little-endian bitmap over row numbers) only rows whose bit is set are considered."""
    if ann.ntotal == 0 or count <= 0:
        return np.empty(0, dtype=np.int64)
    selector = None
    if allowed is not None:
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(allowed))
    params = faiss.SearchParametersIVF()
    params.nprobe = max(1, probes)
    if selector is not None:
        params.sel = selector  # `selector` and `allowed` stay referenced until the search returns
    _, keys = ann.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), count, params=params)
    found = np.asarray(keys[0], dtype=np.int64)
    return found[found >= 0]


def list_count(ann: Any) -> int:
    return int(faiss.extract_index_ivf(ann).nlist)
