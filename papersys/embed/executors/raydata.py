"""The Ray executor: a model's backlog flows through Ray Data, ``map_batches`` over an actor pool.

One pipeline per model run, kept alive from the first chunk to the last: the driver (this process) puts each
chunk's texts into a Ray queue that a single zero-CPU read task turns into blocks; ``ray_actors`` actors,
each holding one engine (``inline_engine``: every backend works, the model loaded once per actor), embed
them; the vectors come back in block order (``preserve_order``) and the driver writes whole chunks through
the patcher's part path. At most ``WINDOW`` chunks are in flight, so the driver's memory stays flat whatever
the backlog. Actors that die are restarted by Ray Data (``max_restarts=-1``) and their batches retried.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from papersys.config import EmbeddingConfig, ModelConfig
from papersys.embed.executors import ExecContext, WriteFn
from papersys.errors import EngineError, ExecutorError, ExecutorMissingError, Interrupted

CONNECT_TIMEOUT_S = 10.0
WINDOW = 3  # chunks in flight: >= 2 so that a chunk's short tail block can be bundled with the next one's
BLOCKS_PER_ACTOR = 2  # a chunk is cut into about this many blocks per actor (the unit of work and progress)
MISSING = "executor = 'ray' needs Ray, an optional extra: install it with `uv sync --extra ray`"


def import_ray() -> Any:
    # Under `uv run` Ray would package the project and build a venv for its workers at every start (read
    # once, at import); a local Ray's workers run this interpreter, which has papersys and the engines
    # already. Set RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 to ship the project to a cluster that lacks it.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise ExecutorMissingError(MISSING) from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return host.strip("[]"), int(port)


def preflight(embedding: EmbeddingConfig) -> None:
    """Before any write: Ray importable and, for a cluster, joined (an explicit address is first probed with a
    TCP connect, bounded: ``ray.init`` waits far longer for a head that never answers). A joined cluster stays
    joined for the process's life (the daemon's next embed job reuses the connection)."""
    ray = import_ray()
    address = embedding.ray_address
    if not address:
        return  # a private local Ray, started at the first chunk: a run with nothing to embed never starts it
    if address != "auto":
        try:
            socket.create_connection(_host_port(address), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ExecutorError(f"ray_address {address!r} does not answer ({reason}); nothing was written") from None
    if not ray.is_initialized():
        connect(embedding)


def connect(embedding: EmbeddingConfig) -> bool:
    """Join ``ray_address``, or start a local Ray; True when this call started it (and must shut it down)."""
    ray = import_ray()
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if embedding.ray_address:
            ray.init(address=embedding.ray_address, **quiet)
        else:
            store = embedding.ray_object_store_mb * 2**20
            ray.init(num_cpus=os.cpu_count(), object_store_memory=store, **quiet)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        where = repr(embedding.ray_address) if embedding.ray_address else "a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorError(f"cannot start or join {where}: {first}") from None
    return True


class RayRun:
    """The Ray of one autopatch run, shared by its Ray models: joined, or started (a private local Ray), at the
    first chunk of the first Ray model, so a run with nothing to embed never starts it; a Ray that this run
    started is shut down by ``close``, after the last model. A Ray already initialised is joined, left running."""

    def __init__(self, embedding: EmbeddingConfig) -> None:
        self.embedding = embedding
        self.started = False

    def join(self) -> None:
        if connect(self.embedding):
            self.started = True

    def close(self) -> None:
        if self.started:
            import_ray().shutdown()
            self.started = False


class _EmbedActor:
    """One engine per actor, built once; embeds a batch of ``text`` keeping its ``chunk`` and ``row``."""

    def __init__(self, model: ModelConfig) -> None:
        from papersys.embed.engines import inline_engine

        self.engine = inline_engine(model)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.engine.embed([str(text) for text in batch["text"]])
        return {"chunk": batch["chunk"], "row": batch["row"], "vector": np.asarray(vectors, dtype=np.float32)}


def _take(queue: Any) -> list[Any]:
    """One read task's output: the next block the driver put in ``queue``; none once it put the end (None),
    which stays in the queue for the read tasks left over."""
    block = queue.get()
    if block is None:
        queue.put(None)
        return []
    return [block]


def _feed(queue: Any, blocks: int) -> Any:
    """A Ray Data source of ``blocks`` read tasks, run one at a time, each taking one block from ``queue``.

    One task per block, not one task yielding them all: a task's output is buffered until it holds
    ``target_max_block_size`` (128 MiB) or the task ends, which would hold the first chunks back."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class QueueFeed(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[Any]:
            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None)
            return [ReadTask(lambda: _take(queue), meta) for _ in range(blocks)]

    return QueueFeed()  # type: ignore[no-untyped-call]


def block_rows(model: ModelConfig) -> int:
    """Rows per block (whole batches): a chunk is cut into about two blocks per actor."""
    step = max(model.batch_size, model.chunk_size // (BLOCKS_PER_ACTOR * model.ray_actors))
    return -(-step // model.batch_size) * model.batch_size


def blocks_for(model: ModelConfig, papers: int) -> int:
    """Blocks that ``papers`` queued gaps make at most (full chunks, then one short chunk)."""
    per_chunk = -(-model.chunk_size // block_rows(model))
    return papers // model.chunk_size * per_chunk + -(-(papers % model.chunk_size) // block_rows(model))


@dataclass
class _Chunk:
    rows: pl.DataFrame
    vectors: np.ndarray[Any, np.dtype[np.float32]]
    got: np.ndarray[Any, np.dtype[np.bool_]]
    left: int


class RayExecutor:
    """Chunks in, vectors out, in order; opened (Ray joined, pipeline built) at the first chunk."""

    def __init__(self, embedding: EmbeddingConfig, ctx: ExecContext, budget: int, *, ray: RayRun) -> None:
        self.embedding, self.ctx, self.budget = embedding, ctx, budget  # budget: the most papers it will get
        self.ray = ray  # the run's Ray, joined at the first chunk (the run shuts down one it started)
        self.inflight: deque[_Chunk] = deque()
        self.base = 0  # number of the chunk at inflight[0]
        self.queue: Any = None
        self.batches: Iterator[dict[str, Any]] | None = None
        self.began = 0.0
        self._load_seconds: float | None = None
        self.last = 0.0

    @property
    def load_seconds(self) -> float:
        return self._load_seconds or 0.0

    def _start(self) -> Iterator[dict[str, Any]]:
        ray, model = import_ray(), self.ctx.model
        self.began = self.ctx.runtime.monotonic()
        self.ray.join()
        from ray.util.queue import Queue

        data = ray.data.DataContext.get_current()
        data.execution_options.preserve_order = True  # blocks come back in the order they were put
        data.enable_progress_bars = False  # progress is the runtime's
        data.print_on_execution_start = False
        self.queue = Queue(actor_options={"num_cpus": 0})
        blocks = max(1, blocks_for(model, self.budget))
        dataset = ray.data.read_datasource(
            _feed(self.queue, blocks), override_num_blocks=blocks, num_cpus=0, concurrency=1
        )
        dataset = dataset.map_batches(
            _EmbedActor,
            fn_constructor_args=(model,),
            batch_size=model.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=model.ray_actors),
            num_cpus=model.ray_cpus_per_actor,
            num_gpus=model.ray_gpus_per_actor,
        )
        batches: Iterator[dict[str, Any]] = iter(
            dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
        )
        self.batches = batches
        return batches

    def embed(self, chunk: pl.DataFrame, write: WriteFn) -> None:
        if self.batches is None:
            self._start()
        number = self.base + len(self.inflight)
        dim = self.ctx.model.dim
        self.inflight.append(
            _Chunk(chunk, np.empty((chunk.height, dim), np.float32), np.zeros(chunk.height, np.bool_), chunk.height)
        )
        self._put(number, chunk["text"])
        self._pull_while(write, lambda: len(self.inflight) > WINDOW)

    def _put(self, number: int, texts: pl.Series) -> None:
        import pyarrow as pa

        step = block_rows(self.ctx.model)
        for start in range(0, texts.len(), step):
            part = texts.slice(start, step)
            rows = np.arange(start, start + part.len(), dtype=np.int64)
            block = pa.table({"chunk": np.full(part.len(), number, np.int64), "row": rows, "text": part.to_arrow()})
            self.queue.put(block)

    def flush(self, write: WriteFn) -> None:
        if self.batches is None:
            return
        self.queue.put(None)  # the read task ends: the pool's last short bundle is flushed
        self._pull_while(write, lambda: bool(self.inflight))

    def _pull_while(self, write: WriteFn, more: Any) -> None:
        try:
            while more():
                self._pull(write)
        except (Interrupted, EngineError):
            self._write_received(write)  # a cancel or a failed engine keeps every vector that came back
            raise

    def _pull(self, write: WriteFn) -> None:
        runtime, model = self.ctx.runtime, self.ctx.model
        runtime.check_cancel()
        batch = self._next()
        now = runtime.monotonic()
        if self._load_seconds is None:
            self._load_seconds = now - self.began  # Ray start, actors' model load, and the first block
        count = len(batch["row"])
        vectors = self.ctx.check(batch["vector"], count)
        for number in np.unique(batch["chunk"]):
            mask = batch["chunk"] == number
            target, rows = self.inflight[int(number) - self.base], batch["row"][mask]
            target.vectors[rows], target.got[rows] = vectors[mask], True
            target.left -= len(rows)
        runtime.observer.embedded(model.alias, count, now - max(self.last, self.began))
        self.last = now
        self.ctx.task.advance(count)
        while self.inflight and self.inflight[0].left == 0:
            done = self.inflight.popleft()
            self.base += 1
            write(done.rows, done.vectors)

    def _next(self) -> dict[str, Any]:
        assert self.batches is not None
        try:
            return next(self.batches)
        except StopIteration:
            raise EngineError(self.ctx.model.alias, "ray: the pipeline ended with chunks in flight") from None
        except Exception as exc:  # a Ray task or actor error: the engine's message, on one line
            text = str(exc).strip().splitlines()
            raise EngineError(self.ctx.model.alias, f"ray: {text[-1] if text else type(exc).__name__}") from None

    def _write_received(self, write: WriteFn) -> None:
        while self.inflight:
            chunk = self.inflight.popleft()
            self.base += 1
            if chunk.got.any():
                write(chunk.rows.filter(pl.Series(chunk.got)), chunk.vectors[chunk.got])

    def close(self) -> None:
        if self.batches is not None:
            close = getattr(self.batches, "close", None)
            if close is not None:
                close()  # stops the streaming executor and its actors
            self.batches = None
        if self.queue is not None:
            self.queue.shutdown()
            self.queue = None
