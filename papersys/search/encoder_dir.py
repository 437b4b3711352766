"""The query encoder's directory: ``encoder.json`` (what was exported, how it was checked), generations, swap.

``<dir>`` is a relative symlink to a sibling generation ``.<dir>.<pid>.<hex8>/`` holding ``model.onnx``,
``tokenizer.json`` and ``encoder.json``. An export builds a new generation beside it and then replaces the
symlink with ``os.replace`` — one atomic rename — so a reader sees the old export or the new one, never a
half-written one, and a kill at any instant leaves the previous export in place. Generations left by dead
exporters are swept by the next export. Reading needs none of the store's modules (they import polars,
which a cold ``papersys search`` should not pay for twice).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from papersys.config import ModelConfig
from papersys.errors import ManifestMismatchError, StoreError

FORMAT = 1
ENCODER_JSON = "encoder.json"
MODEL_ONNX = "model.onnx"
TOKENIZER_JSON = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what the ONNX graph may take, in this order
REBUILD = "`papersys index` exports it again"
Pooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class CheckResult:
    """How close the ONNX encoder came to sentence-transformers on the texts it was checked with."""

    texts: int
    min_cosine: float
    mean_cosine: float


@dataclass(frozen=True)
class EncoderInfo:
    """``encoder.json``: the identity of an export (model, dim, max_length) and how it computes vectors."""

    model: str  # the configured name (hub id or path), not the resolved path: moving a venv changes nothing
    dim: int
    max_length: int
    pooling: Pooling
    normalize: bool  # the model's own pipeline ends in Normalize
    inputs: tuple[str, ...]
    onnx_bytes: int  # size of model.onnx: a truncated copy is refused
    sentence_transformers: str
    torch: str
    created_at: str
    papersys_version: str
    check: CheckResult
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, path: Path) -> EncoderInfo:
        """Parse ``path``; StoreError when it is missing, not JSON, of another format, or malformed."""
        try:
            raw: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(path, "missing: not a query encoder export", REBUILD) from None
        except (OSError, ValueError) as exc:
            raise StoreError(path, f"unreadable: {exc}", REBUILD) from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else None
            raise StoreError(path, f"format {found!r}, this papersys reads format {FORMAT}", REBUILD)
        try:
            check = CheckResult(**raw.pop("check"))
            info = cls(check=check, **{**raw, "inputs": tuple(raw["inputs"])})
        except (KeyError, TypeError) as exc:
            raise StoreError(path, f"malformed: {exc}", REBUILD) from exc
        if info.pooling not in ("mean", "cls") or not {"input_ids", "attention_mask"} <= set(info.inputs) <= set(
            INPUTS
        ):
            raise StoreError(path, f"malformed: pooling {info.pooling!r}, inputs {list(info.inputs)}", REBUILD)
        return info

    def differences(self, model: ModelConfig) -> list[str]:
        """What differs between this export and ``model``'s configuration (empty: it fits)."""
        pairs: list[tuple[str, object, object]] = [
            ("name", self.model, model.name),
            ("dim", self.dim, model.dim),
            ("max_length", self.max_length, model.max_length),
        ]
        return [f"{key}: exported {ours!r} != configured {theirs!r}" for key, ours, theirs in pairs if ours != theirs]

    def check_fits(self, path: Path, model: ModelConfig) -> None:
        diffs = self.differences(model)
        if diffs:
            raise ManifestMismatchError(path, "; ".join(diffs), f"model {model.alias!r}: {REBUILD}")


def _generation_re(directory: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(directory.name)}\.(\d+)\.[0-9a-f]{{8}}(\.link)?$")


def resolve(directory: Path) -> Path | None:
    """The directory holding the current export's files, or None when nothing was ever published there."""
    if directory.is_symlink():
        target = os.readlink(directory)
        if not _generation_re(directory).match(target):
            raise StoreError(directory, f"symlink to {target!r}, not to one of its generations", REBUILD)
        return directory.parent / target
    return directory if directory.is_dir() else None


def new_generation(directory: Path) -> Path:
    """A fresh, empty generation directory beside ``directory`` (invisible until published)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    generation = directory.parent / f".{directory.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    generation.mkdir()
    return generation


def publish(generation: Path, directory: Path) -> None:
    """Make ``generation`` (complete, its files fsynced) what ``directory`` shows, in one atomic rename."""
    from papersys.faults import crash_point
    from papersys.store.atomic import fsync_path

    for entry in generation.iterdir():
        fsync_path(entry)
    fsync_path(generation)
    link = generation.with_name(generation.name + ".link")
    os.symlink(generation.name, link)
    if directory.is_dir() and not directory.is_symlink():  # a plain directory (copied with -L): set it aside
        directory.rename(directory.parent / f".{directory.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    crash_point("encoder.before_publish")  # the new generation complete, the old one still shown
    os.replace(link, directory)
    fsync_path(directory.parent)


def sweep(directory: Path) -> int:
    """Delete generations that are not shown: ours and those of dead exporters; returns how many.

    A live process's generation is left alone (it may be an export in progress); it goes at the next sweep
    after that process ends.
    """
    import shutil

    from papersys.store.atomic import pid_alive

    if not directory.parent.is_dir():
        return 0
    current = resolve(directory)
    pattern = _generation_re(directory)
    removed = 0
    for entry in directory.parent.iterdir():
        match = pattern.match(entry.name)
        if not match or entry == current:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and pid_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed
