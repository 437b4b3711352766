"""The manifest check: a configured model must match what its stored vectors were made with."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from papersys import __version__
from papersys.config import ModelConfig
from papersys.errors import ManifestMismatchError
from papersys.store.embeddings import Manifest, read_manifest, write_manifest
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


def check_manifest(layout: Layout, model: ModelConfig) -> Manifest:
    """The stored manifest when it matches ``model`` (the configured one when none is stored yet).

    Raises ManifestMismatchError naming every difference and the flag that accepts a full re-embed.
    """
    stored = read_manifest(layout, model.alias)
    wanted = configured_manifest(model)
    if stored is None:
        return wanted
    diffs = stored.differences(wanted)
    if diffs:
        raise ManifestMismatchError(
            layout.manifest_file(model.alias),
            "; ".join(diffs),
            f"`papersys embed autopatch --model {model.alias} --reembed` re-embeds every paper with the new settings",
        )
    return stored


def prepare_manifest(
    layout: Layout, model: ModelConfig, *, reembed: bool, dry_run: bool, now: datetime
) -> tuple[Manifest, ManifestAction]:
    """The manifest autopatch works under, written first (unless ``dry_run``).

    With ``reembed`` and a mismatch, the new manifest gets ``valid_since = now``: every older row then reads
    as stale and is replaced, and a run killed mid re-embed resumes without the flag. With ``reembed`` and
    a matching manifest nothing changes, so repeating the same command never throws finished work away.
    """
    try:
        stored = check_manifest(layout, model)
    except ManifestMismatchError:
        if not reembed:
            raise
        manifest = replace(configured_manifest(model, now), valid_since=now)
        if not dry_run:
            write_manifest(layout, model.alias, manifest)
        return manifest, "reembed"
    if layout.manifest_file(model.alias).exists():
        return stored, "kept"
    created = configured_manifest(model, now)
    if not dry_run:
        write_manifest(layout, model.alias, created)
    return created, "created"
