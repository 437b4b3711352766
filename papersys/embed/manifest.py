"""The manifest check: a configured model must match what its stored vectors were made with."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from papersys import __version__
from papersys.config import ModelConfig
from papersys.errors import ManifestMismatchError
from papersys.store.embeddings import Manifest, read_manifest, stored_years, write_manifest
from papersys.store.layout import Layout

ManifestAction = Literal["kept", "created", "reembed"]


def configured_manifest(model: ModelConfig, now: datetime | None = None) -> Manifest:
    return Manifest(
        name=model.name,
        backend=model.backend,
        dim=model.dim,
        dtype=model.dtype,
        normalize=model.normalize,
        template=model.template,
        prefix=model.prefix,
        max_length=model.max_length,
        papersys_version=__version__,
        created_at=now,
    )


def _mismatch(layout: Layout, model: ModelConfig, diffs: list[str]) -> ManifestMismatchError:
    return ManifestMismatchError(
        layout.manifest_file(model.alias),
        "; ".join(diffs),
        f"`papersys embed autopatch --model {model.alias} --reembed` re-embeds every paper with the new settings",
    )


def check_manifest(layout: Layout, model: ModelConfig) -> Manifest:
    """The stored manifest when it matches ``model``; the configured one when none is stored, or when no
    vector is stored (a manifest with nothing behind it protects nothing).

    Raises ManifestMismatchError naming every difference and the flag that accepts a full re-embed.
    """
    stored = read_manifest(layout, model.alias)
    wanted = configured_manifest(model)
    if stored is None:
        return wanted
    diffs = stored.differences(wanted)
    if not diffs:
        return stored
    if not stored_years(layout, model.alias):
        return wanted
    raise _mismatch(layout, model, diffs)


def prepare_manifest(
    layout: Layout, model: ModelConfig, *, reembed: bool, dry_run: bool, now: datetime
) -> tuple[Manifest, ManifestAction]:
    """The manifest autopatch works under, written first (unless ``dry_run``).

    With ``reembed`` and a mismatch, the new manifest gets ``valid_since = now``: every older row then reads
    as stale and is replaced, and a run killed mid re-embed resumes without the flag. With ``reembed`` and
    a matching manifest nothing changes, so repeating the same command never throws finished work away.
    """
    stored = read_manifest(layout, model.alias)
    wanted = configured_manifest(model, now)
    diffs = stored.differences(wanted) if stored is not None else []
    if stored is not None and not diffs:
        return stored, "kept"
    action: ManifestAction = "created"
    if stored is not None and stored_years(layout, model.alias):  # a mismatch with vectors behind it
        if not reembed:
            raise _mismatch(layout, model, diffs)
        wanted, action = replace(wanted, valid_since=now), "reembed"
    if not dry_run:
        write_manifest(layout, model.alias, wanted)
    return wanted, action
