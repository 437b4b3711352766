"""The local executor: the model's engine in this process (or its spawned worker), one batch at a time."""

from __future__ import annotations

import numpy as np
import polars as pl

from papersys.embed.engines import Engine
from papersys.embed.executors import EngineFactory, ExecContext, WriteFn
from papersys.errors import EngineError, Interrupted


class LocalExecutor:
    """Opens the engine at the first batch; progress per batch, a cancel is seen between batches."""

    def __init__(self, ctx: ExecContext, factory: EngineFactory) -> None:
        self.ctx, self.factory = ctx, factory
        self.engine: Engine | None = None
        self._load_seconds = 0.0

    @property
    def load_seconds(self) -> float:
        return self._load_seconds

    def embed(self, chunk: pl.DataFrame, write: WriteFn) -> None:
        model, runtime = self.ctx.model, self.ctx.runtime
        texts = chunk["text"].to_list()
        vectors = np.empty((len(texts), model.dim), dtype=np.float32)
        done = 0
        try:
            for start in range(0, len(texts), model.batch_size):
                runtime.check_cancel()
                engine = self._engine()
                batch = texts[start : start + model.batch_size]
                began = runtime.monotonic()
                vectors[start : start + len(batch)] = self.ctx.check(engine.embed(batch), len(batch))
                done += len(batch)
                runtime.observer.embedded(model.alias, len(batch), runtime.monotonic() - began)
                self.ctx.task.advance(len(batch))
        except (Interrupted, EngineError):
            # a cancel or a dead worker keeps every finished batch of the chunk (a kill -9 loses the chunk)
            write(chunk.head(done), vectors[:done])
            raise
        write(chunk, vectors)

    def _engine(self) -> Engine:
        if self.engine is None:
            runtime = self.ctx.runtime
            began = runtime.monotonic()
            self.engine = self.factory(self.ctx.model, self.ctx.log_path)
            self._load_seconds = runtime.monotonic() - began
        return self.engine

    def flush(self, write: WriteFn) -> None:
        """Nothing is ever in flight: every chunk was written by ``embed``."""

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
