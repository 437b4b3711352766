"""Where each legacy vector column goes: its dim (the majority length in the data), the configured model of
that alias if any (checked: same dim, legacy template), and the manifest that lets autopatch continue it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime

from papersys.config import Config, ModelConfig
from papersys.embed.manifest import check_manifest, configured_manifest
from papersys.errors import ManifestMismatchError, UsageError
from papersys.migrate.legacy import LEGACY_TEMPLATE, LegacyModel
from papersys.store.embeddings import Manifest, read_manifest, stored_years
from papersys.store.layout import Layout

IDENTITY_FROM_DATA = ("name", "dim", "template", "prefix")  # what an unconfigured alias's manifest must keep


@dataclass
class Target:
    """One migrated model. ``manifest`` is None until known (an unconfigured model's waits for the data's norm)."""

    legacy: LegacyModel
    name: str
    dim: int | None
    lengths: dict[int, int]
    model: ModelConfig | None  # the configured model of this alias
    manifest: Manifest | None
    manifest_action: str  # "kept" | "created" | "none"
    unit_norm: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return self.legacy.alias

    @property
    def dtype(self) -> str:
        if self.model:
            return self.model.dtype
        return self.manifest.dtype if self.manifest else "float32"  # a kept manifest's storage dtype

    def settle(self, unit_norm: bool | None, now: datetime) -> Manifest:
        """The manifest to write before the first vector (an unconfigured model's records the data's norm).

        Called once, at the first valid vector: a model without any never gets a manifest.
        """
        self.unit_norm = unit_norm
        if self.manifest is None:
            self.manifest = configured_manifest(self.implied_model(), now)
            self.manifest_action = "created"
        if self.model and unit_norm is not None and unit_norm != self.model.normalize:
            what = "unit length" if unit_norm else "not unit length"
            self.notes.append(
                f"the legacy vectors are {what} but the config says normalize = {str(self.model.normalize).lower()}"
                " (cosine similarity is unaffected; raw dot products are)"
            )
        return self.manifest

    def implied_model(self) -> ModelConfig:
        """The configured model, or the one an unconfigured alias's manifest describes."""
        if self.model is not None:
            return self.model
        assert self.dim is not None
        normalize = self.unit_norm if self.unit_norm is not None else True
        if self.manifest is not None:  # a kept manifest: its identity, field for field
            return ModelConfig(alias=self.alias, **self.manifest.identity())
        return ModelConfig(
            alias=self.alias, name=self.name, dim=self.dim, normalize=normalize, template=LEGACY_TEMPLATE
        )

    def config_block(self) -> tuple[str, ...]:
        """The TOML to add so that ``embed autopatch`` keeps this model current (matching its manifest)."""
        if self.model is not None or self.dim is None:
            return ()
        m = self.implied_model()
        return (
            "[[embedding.models]]",
            f"alias = {json.dumps(m.alias)}",
            f"name = {json.dumps(m.name)}",
            f'backend = "{m.backend}"  # recorded in the manifest; see devdoc/migration.md to use vllm',
            f"dim = {m.dim}",
            f"max_length = {m.max_length}",
            f'dtype = "{m.dtype}"',
            f"normalize = {str(m.normalize).lower()}",
            f"template = {json.dumps(m.template)}",
        )


def majority_dim(lengths: dict[int, int]) -> int | None:
    """The most frequent vector length (the longer one on a tie)."""
    if not lengths:
        return None
    return max(lengths.items(), key=lambda item: (item[1], item[0]))[0]


def resolve_targets(config: Config, layout: Layout, models: list[tuple[LegacyModel, Counter[int]]]) -> list[Target]:
    """Check every mapped model against the config and the stored manifest before anything is written."""
    configured = {m.alias: m for m in config.embedding.models}
    return [_resolve(config, layout, legacy, dict(lengths), configured.get(legacy.alias)) for legacy, lengths in models]


def _resolve(
    config: Config, layout: Layout, legacy: LegacyModel, lengths: dict[int, int], model: ModelConfig | None
) -> Target:
    dim = majority_dim(lengths)
    stored = read_manifest(layout, legacy.alias)
    if model is not None:
        if model.template != LEGACY_TEMPLATE or model.prefix:
            raise UsageError(
                f"model {legacy.alias!r} is configured with template {model.template!r} and prefix {model.prefix!r}; "
                f"the legacy {legacy.column!r} vectors were made from {LEGACY_TEMPLATE!r} without a prefix: "
                f"migrate them under another alias (--model {legacy.column}=OTHER_ALIAS:NAME) or fix the config"
            )
        if dim is not None and model.dim != dim:
            raise UsageError(
                f"model {legacy.alias!r} is configured with dim {model.dim} but the legacy {legacy.column!r} "
                f"vectors have {dim} dimensions: map the column to another alias with --model"
            )
        check_manifest(layout, model)  # refuses a stored manifest that contradicts the config over vectors
        kept = stored if stored is not None and not stored.differences(configured_manifest(model)) else None
        target = Target(legacy, model.name, dim, lengths, model, kept, "kept" if kept else "none")
        if legacy.name and legacy.name != model.name:
            target.notes.append(f"configured name {model.name!r} used (the mapping says {legacy.name!r})")
        return target
    name = legacy.name
    if name is None:
        raise UsageError(
            f"--model {legacy.column}={legacy.alias}: alias {legacy.alias!r} is not configured, so give the "
            f"model name too: --model {legacy.column}={legacy.alias}:HF_NAME"
        )
    if stored is None:
        return Target(legacy, name, dim, lengths, None, None, "none")
    wanted = replace(stored, name=name, dim=dim or stored.dim, template=LEGACY_TEMPLATE, prefix="")
    diffs = [d for d in stored.differences(wanted) if d.split(":")[0] in IDENTITY_FROM_DATA]
    if diffs and not stored_years(layout, legacy.alias):  # nothing stored behind it: replaced, as autopatch does
        return Target(legacy, name, dim, lengths, None, None, "none")
    if diffs:
        raise ManifestMismatchError(
            layout.manifest_file(legacy.alias),
            "; ".join(diffs).replace("configured", "legacy"),
            f"migrate the {legacy.column!r} vectors under another alias (--model {legacy.column}=OTHER_ALIAS:NAME)",
        )
    return Target(legacy, name, dim, lengths, None, stored, "kept")
