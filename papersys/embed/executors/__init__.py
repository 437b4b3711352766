"""Who embeds a model's chunks (DESIGN §8 ``embed/executors/``): ``local`` (this process's engine, batch by
batch) or ``ray`` (Ray Data, an actor pool). Both hand finished rows back to the patcher's ``write``, in
chunk order, so the durable part path, compaction and coverage recording are the same for both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import polars as pl

from papersys.config import EmbeddingConfig, ModelConfig
from papersys.embed.engines import Engine, Vectors
from papersys.runtime import ProgressTask, Runtime

if TYPE_CHECKING:
    from papersys.embed.executors.raydata import RayRun

EngineFactory = Callable[[ModelConfig, Path], Engine]
WriteFn = Callable[[pl.DataFrame, Vectors], None]  # rows of a chunk (its columns, in order) and their vectors
CheckFn = Callable[[Vectors, int], Vectors]  # the patcher's vector check: raises EngineError


@dataclass(frozen=True)
class ExecContext:
    """What an executor reports to and checks with: the run's runtime (cancel, observer), its progress task."""

    model: ModelConfig
    runtime: Runtime
    task: ProgressTask
    check: CheckFn
    log_path: Path  # a spawned worker's log


class Executor(Protocol):
    @property
    def load_seconds(self) -> float:
        """Seconds spent starting engines (imports, model load, Ray start) before the first vectors."""
        ...

    def embed(self, chunk: pl.DataFrame, write: WriteFn) -> None:
        """Embed ``chunk`` (sorted, with a ``text`` column); ``write`` gets its rows with their vectors, now or
        at a later call, in chunk order. On a cancel or an EngineError every finished row is written first."""
        ...

    def flush(self, write: WriteFn) -> None:
        """Write every chunk still in flight."""
        ...

    def close(self) -> None: ...


def open_executor(
    embedding: EmbeddingConfig, ctx: ExecContext, factory: EngineFactory, budget: int, *, ray: RayRun
) -> Executor:
    """The executor of ``ctx.model`` (its ``executor``, else ``[embedding] executor``); ``factory`` opens the
    local executor's engine; ``budget`` bounds the papers this run will hand it; ``ray``, the run's Ray (shared by
    its Ray models, joined at their first chunk)."""
    if embedding.executor_of(ctx.model) == "ray":
        from papersys.embed.executors.raydata import RayExecutor

        return RayExecutor(embedding, ctx, budget, ray=ray)
    from papersys.embed.executors.local import LocalExecutor

    return LocalExecutor(ctx, factory)
