"""Config loading: defaults, the example file, path resolution, and one-line validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli
from pydantic import BaseModel

from papersys.config import CONFIG_ENV, Config, ModelConfig, load_config
from papersys.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example.toml"


def _keys_of(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def _walk(model: type[BaseModel], raw: dict[str, Any], path: str) -> list[str]:
    """Every field of ``model`` (recursively) that the example file does not spell out."""
    missing = []
    for name, info in model.model_fields.items():
        if name not in raw:
            missing.append(f"{path}{name}")
            continue
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            missing += _walk(ann, raw[name], f"{path}{name}.")
    return missing


def test_example_file_lists_every_key_with_its_default() -> None:
    raw = tomli.loads(EXAMPLE.read_text())
    assert _walk(Config, raw, "") == []
    model_raw = raw["embedding"]["models"][0]
    assert set(model_raw) == _keys_of(ModelConfig)
    example = load_config(EXAMPLE)
    defaults = Config()
    # identical to the embedded defaults once data_dir is resolved the same way
    assert example.data_dir == EXAMPLE.parent / "data"
    assert example.model_dump(exclude={"data_dir"}) == defaults.model_dump(exclude={"data_dir"})


def test_no_file_means_defaults_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={})
    assert config.data_dir == tmp_path / "data"
    assert config.ingest.base_url == "https://oaipmh.arxiv.org/oai"
    assert [m.alias for m in config.embedding.models] == ["minilm"]
    assert config.embedding.models[0].dim == 384


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    file = conf_dir / "papersys.toml"
    file.write_text('data_dir = "../store"\n[[embedding.models]]\nalias = "m"\nname = "./models/m"\n')
    config = load_config(file)
    assert config.data_dir == conf_dir / ".." / "store"
    assert config.embedding.models[0].name == str((conf_dir / "models" / "m").resolve())


def test_hub_ids_are_not_treated_as_paths(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[[embedding.models]]\nalias = "m"\nname = "org/model"\n')
    assert load_config(file).embedding.models[0].name == "org/model"


def test_env_var_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('log_level = "debug"\n[ingest]\nsets = ["cs", "physics:hep-th"]\n')
    config = load_config(None, env={CONFIG_ENV: str(file)})
    assert config.log_level == "DEBUG"
    assert config.ingest.sets == ("cs", "physics:hep-th")


def test_validation_errors_are_one_line_per_problem(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(
        '[ingest]\nrequest_interval_s = "soon"\nbogus = 1\nsets = ["not a set"]\n[[embedding.models]]\ndim = 0\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(file)
    lines = str(info.value).splitlines()
    expected = "ingest.request_interval_s: Input should be a valid number, unable to parse string as a number"
    assert f"{file}: {expected}" in lines
    assert f"{file}: ingest.bogus: unknown key" in lines
    assert any("ingest.sets" in line and "not an arXiv set spec" in line for line in lines)
    assert any("embedding.models.0.dim" in line for line in lines)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("data_dir = ", "invalid TOML"),
        ("[[embedding.models]]\nalias='a'\n[[embedding.models]]\nalias='a'\n", "used twice"),
        ("[[embedding.models]]\ntemplate = '{title} {body}'\n", "unknown field(s) ['body']"),
        ("[metrics]\nport = 70000\n", "metrics.port"),
        ("[ingest]\nmetadata_prefix = 'oai_dc'\n", "ingest.metadata_prefix"),
        ("[[embedding.models]]\nexecutor = 'dask'\n", "embedding.models.0.executor"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        load_config(file)
    assert fragment in str(info.value)


def test_a_models_executor_overrides_the_sections(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(
        '[embedding]\nexecutor = "local"\n[[embedding.models]]\nalias = "a"\n'
        '[[embedding.models]]\nalias = "b"\nexecutor = "ray"\n'
    )
    embedding = load_config(file).embedding
    a, b = embedding.models
    assert (a.executor, embedding.executor_of(a), embedding.executor_of(b)) == ("", "local", "ray")
    assert embedding.uses_ray([b]) and not embedding.uses_ray([a])
    on_ray = embedding.model_copy(update={"executor": "ray"})
    assert on_ray.executor_of(a) == "ray" and on_ray.executor_of(a.model_copy(update={"executor": "local"})) == "local"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(Exception, match="frozen"):
        config.log_level = "DEBUG"  # type: ignore[misc]
