"""Configuration: frozen pydantic models for the TOML file, and ``load_config`` (file, env var, defaults)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from papersys.errors import ConfigError, UsageError
from papersys.secret_refs import check_header_value, resolve_env_ref, split_credentials

CONFIG_ENV = "PAPERSYS_CONFIG"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_TEMPLATE = "{title}\n{abstract}"
TEMPLATE_FIELDS = frozenset({"title", "abstract", "id", "primary_category", "categories", "authors"})

_SET_RE = re.compile(r"^[a-z-]+(:[a-z-]+(:[A-Za-z.-]+)?)?$")


def is_set_spec(spec: str) -> bool:
    """An OAI set as arXiv spells it: ``cs``, ``physics:hep-th``, ``cs:cs:LG``."""
    return bool(_SET_RE.match(spec))


_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CATEGORY_RE = re.compile(r"^[a-z-]+(\.[A-Za-z-]+)?$")
_FEED_RE = _CATEGORY_RE  # a feed is an archive (cs, hep-th) or a category (stat.ML)

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _env_secret(value: Any, info: ValidationInfo) -> Any:
    """A key where a secret can sit accepts "env:NAME", resolved at load (load_config passes its env mapping)."""
    env = (info.context or {}).get("env", os.environ)
    return resolve_env_ref(value, env)


def _header_secret(value: SecretStr) -> SecretStr:
    """A secret sent in an Authorization header must be visible ASCII."""
    check_header_value(value.get_secret_value())
    return value


class IngestConfig(_Frozen):
    base_url: str = "https://oaipmh.arxiv.org/oai"
    metadata_prefix: Literal["arXiv", "arXivRaw"] = "arXiv"
    sets: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    request_interval_s: NonNegFloat = 3.0
    timeout_s: PositiveFloat = 60.0
    max_retries: Annotated[int, Field(ge=0)] = 8
    max_retry_after_s: NonNegFloat = 600.0
    backoff_base_s: NonNegFloat = 5.0
    overlap_days: Annotated[int, Field(ge=0)] = 1
    initial_days: Annotated[int, Field(ge=1)] = 7
    window_days: Annotated[int, Field(ge=1)] = 30
    user_agent: str = "papersys (+https://github.com/papersys/papersys)"
    snapshot_chunk_lines: Annotated[int, Field(ge=1)] = 50_000
    audit_days: Annotated[int, Field(ge=1)] = 7  # `papersys audit` and the daemon's audit: the last N days
    feeds: tuple[str, ...] = ()  # arXiv announcement feeds, e.g. ("cs", "stat.ML"); () = off
    feed_base_url: str = "https://rss.arxiv.org/rss"  # <feed_base_url>/<list>[+<list>...]
    auth_token: SecretStr = SecretStr("")  # "" = none; else sent as "Authorization: Bearer <token>"
    # user/password found in base_url (moved out of it, so the URL can be shown); sent as HTTP basic auth
    _url_credentials: tuple[str, SecretStr] | None = PrivateAttr(default=None)

    _env_reference = field_validator("base_url", "auth_token", mode="before")(_env_secret)
    _token = field_validator("auth_token")(_header_secret)

    @model_validator(mode="after")
    def _move_url_credentials(self) -> IngestConfig:
        url, credentials = split_credentials(self.base_url)
        if credentials is not None:
            if self.auth_token.get_secret_value():
                raise ValueError("base_url carries credentials and auth_token is set too: use one of them")
            object.__setattr__(self, "base_url", url)  # still inside validation: the model is not frozen yet
            self._url_credentials = (credentials[0], SecretStr(credentials[1]))
        return self

    @property
    def url_credentials(self) -> tuple[str, str] | None:
        """(user, password) that base_url carried, for HTTP basic auth; never logged or shown."""
        if self._url_credentials is None:
            return None
        return self._url_credentials[0], self._url_credentials[1].get_secret_value()

    @field_validator("feeds")
    @classmethod
    def _feeds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _FEED_RE.match(name):
                raise ValueError(f"{name!r} is not an arXiv archive or category (e.g. 'cs', 'stat.ML', 'hep-th')")
        return value

    @field_validator("base_url", "feed_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("sets")
    @classmethod
    def _sets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            if not is_set_spec(spec):
                raise ValueError(f"{spec!r} is not an arXiv set spec (e.g. 'cs', 'physics:hep-th', 'cs:cs:LG')")
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cat in value:
            if not _CATEGORY_RE.match(cat):
                raise ValueError(f"{cat!r} is not an arXiv category (e.g. 'cs.LG', 'hep-th')")
        return value


class ModelConfig(_Frozen):
    alias: str = "minilm"
    name: str = DEFAULT_MODEL_NAME
    backend: Literal["sentence_transformer", "vllm", "openai", "model2vec"] = "sentence_transformer"
    isolation: Literal["inline", "spawn"] = "inline"
    dim: Annotated[int, Field(gt=0)] = 384
    batch_size: Annotated[int, Field(gt=0)] = 32
    max_length: Annotated[int, Field(gt=0)] = 256
    device: str = "auto"
    dtype: Literal["float32", "float16"] = "float32"
    normalize: bool = True
    template: str = DEFAULT_TEMPLATE
    prefix: str = ""
    query_prefix: str = ""  # put before a search query (no template): asymmetric models, e.g. "query: " for e5
    enabled: bool = True
    chunk_size: Annotated[int, Field(gt=0)] = 2048
    worker_timeout_s: PositiveFloat = 300.0
    worker_start_timeout_s: PositiveFloat = 900.0
    model_dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    # backend = "openai": a server's OpenAI-compatible /embeddings; ``name`` is the model name it serves
    base_url: str = ""  # the root the OpenAI SDK takes, e.g. http://127.0.0.1:8000/v1; "/embeddings" is appended
    api_key: SecretStr = SecretStr("")  # "" = none; else sent as "Authorization: Bearer <key>"; "env:NAME"
    request_batch_size: Annotated[int, Field(gt=0)] = 32  # texts per HTTP request
    concurrent_requests: Annotated[int, Field(gt=0, le=64)] = 4  # requests in flight at once
    timeout_s: PositiveFloat = 60.0  # per request (connect and read)
    retries: Annotated[int, Field(ge=0)] = 5  # on 408/429/5xx, timeouts and connection errors
    backoff_s: NonNegFloat = 1.0  # the first retry's wait, doubled for each further one
    max_retry_after_s: NonNegFloat = 120.0  # a longer Retry-After or backoff is cut to this
    # who embeds this model: "" = [embedding] executor; "local" or "ray" overrides it for this model
    executor: Literal["", "local", "ray"] = ""
    # executor "ray": the actor pool that embeds this model's backlog (devdoc/scale.md)
    ray_actors: Annotated[int, Field(ge=1)] = 1
    ray_cpus_per_actor: Annotated[float, Field(gt=0)] = 1.0
    ray_gpus_per_actor: NonNegFloat = 0.0

    _env_reference = field_validator("api_key", mode="before")(_env_secret)
    _api_key = field_validator("api_key")(_header_secret)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s@]+(/\S*)?$", value):
            raise ValueError("must be an http(s) URL without credentials (put a key in api_key)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _backend_keys(self) -> ModelConfig:
        if self.backend == "openai":
            if not self.base_url:
                raise ValueError(
                    "backend 'openai' needs base_url, the server's OpenAI-compatible root "
                    "(e.g. http://127.0.0.1:8000/v1; /embeddings is appended)"
                )
            if self.isolation == "spawn":
                raise ValueError("backend 'openai' runs inline (its work is HTTP): remove isolation = 'spawn'")
        elif self.base_url or self.api_key.get_secret_value():
            raise ValueError(f"base_url and api_key apply to backend 'openai' only (this model is {self.backend!r})")
        return self

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not _ALIAS_RE.match(value):
            raise ValueError("must be letters, digits, '_', '.', '-' (it names a directory)")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        from string import Formatter

        try:
            parsed = [(f, spec, conv) for _, f, spec, conv in Formatter().parse(value) if f is not None]
        except ValueError as exc:  # unbalanced braces; literal braces are written {{ and }}
            raise ValueError(f"not a template: {exc}") from None
        unknown = {f for f, _, _ in parsed} - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(TEMPLATE_FIELDS)}")
        if any(spec or conv for _, spec, conv in parsed):
            raise ValueError("fields take no format spec or conversion: write plain {title}")
        return value


class EmbeddingConfig(_Frozen):
    # "local": each model's engine in this process (or its spawned worker); "ray": the backlog flows through
    # Ray Data, an actor pool per model, vectors written here (devdoc/scale.md; needs `uv sync --extra ray`)
    executor: Literal["local", "ray"] = "local"
    ray_address: str = ""  # "": start a local Ray on this machine; "auto" or "ray://host:port" (or host:port): join
    ray_object_store_mb: Annotated[int, Field(ge=80)] = 512  # a local Ray's object store (texts and vectors in flight)
    models: tuple[ModelConfig, ...] = (ModelConfig(),)

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, value: str) -> str:
        if value and value != "auto" and not re.match(r"^(ray://)?[A-Za-z0-9.\-\[\]:]+:\d+$", value):
            raise ValueError(
                "must be '' (a local Ray), 'auto', or an address such as 'ray://head:10001' or 'head:6379'"
            )
        return value

    def executor_of(self, model: ModelConfig) -> Literal["local", "ray"]:
        """Who embeds ``model``: its own ``executor`` when set, else this section's."""
        return model.executor or self.executor

    def uses_ray(self, models: Sequence[ModelConfig]) -> bool:
        return any(self.executor_of(model) == "ray" for model in models)

    @model_validator(mode="after")
    def _unique_aliases(self) -> EmbeddingConfig:
        seen: set[str] = set()
        for model in self.models:
            if model.alias in seen:
                raise ValueError(f"model alias {model.alias!r} is used twice")
            seen.add(model.alias)
        return self


class SchedulerConfig(_Frozen):
    timezone: str = "UTC"
    ingest_cron: str = "0 3 * * *"
    embed_cron: str = "30 3 * * *"
    audit_cron: str = "0 5 * * 0"  # weekly, Sunday 05:00: the last ingest.audit_days, gaps repaired
    # arXiv announces at 20:00 New York time, Sunday to Thursday, and refreshes its feeds by midnight there:
    # 05:00 UTC Monday to Friday is just after (00:00 EST / 01:00 EDT)
    feed_cron: str = "0 5 * * 1-5"
    misfire_grace_s: Annotated[int, Field(ge=1)] = 3600

    @field_validator("ingest_cron", "embed_cron", "audit_cron", "feed_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from papersys.daemon.cron import cron_trigger

        cron_trigger(value, "UTC")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from papersys.daemon.cron import check_timezone

        check_timezone(value)
        return value


class MetricsConfig(_Frozen):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464


class LocksConfig(_Frozen):
    timeout_s: NonNegFloat = 60.0


class StoreConfig(_Frozen):
    """Storage pre-flight ([store], devdoc/reliability.md): a write job refuses to start when its estimated
    output plus this margin does not fit in the free space of the data dir's file system; -1 turns it off."""

    free_space_margin_mb: Annotated[float, Field(ge=-1)] = 64.0


class SearchConfig(_Frozen):
    """Index and ranking parameters ([search]); changing quantization or lists takes `papersys index --rebuild`."""

    ann_min_rows: Annotated[int, Field(ge=0)] = 20_000
    tail_rows: Annotated[int, Field(ge=0)] = 50_000
    quantization: Literal["sq8", "f16", "f32"] = "sq8"
    lists: Annotated[int, Field(ge=0, le=65_536)] = 0  # 0: 2·√rows, a power of two (4,096 at 3 M)
    probes: Annotated[int, Field(ge=1, le=65_536)] = 64  # query-time: a change needs no rebuild
    text_index: bool = True  # keep the full-text index current after every metadata write
    # hybrid fusion, chosen by `scripts/bench.py relevance --sweep` (devdoc/search.md)
    rrf_k: Annotated[int, Field(ge=1, le=10_000)] = 10  # reciprocal-rank fusion constant
    hybrid_depth: Annotated[int, Field(ge=1, le=10_000)] = 50  # candidates taken from each list before fusing
    keyword_weight: Annotated[float, Field(gt=0, le=100)] = 3.0  # the BM25 list's weight against the vectors' 1


class ApiConfig(_Frozen):
    """The read-only HTTP API and search page of `papersys serve` / `papersys api` ([api], devdoc/api.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8765
    token: SecretStr = SecretStr("")  # "" = none (loopback only); else every request needs "Bearer <token>"

    _env_reference = field_validator("token", mode="before")(_env_secret)
    _token = field_validator("token")(_header_secret)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9.:-]+$", value):
            raise ValueError("must be an IP address or a host name")
        return value


class Config(_Frozen):
    _source: str = PrivateAttr(default="the embedded defaults")  # the file it came from, for messages
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    ingest: IngestConfig = IngestConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    metrics: MetricsConfig = MetricsConfig()
    locks: LocksConfig = LocksConfig()
    store: StoreConfig = StoreConfig()
    search: SearchConfig = SearchConfig()
    api: ApiConfig = ApiConfig()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def model(self, alias: str) -> ModelConfig:
        for model in self.embedding.models:
            if model.alias == alias:
                return model
        known = ", ".join(m.alias for m in self.embedding.models) or "none"
        raise UsageError(f"unknown model alias {alias!r} (configured in {self._source}: {known})")


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{loc}: {msg}")
    return lines


def _resolve_paths(config: Config, base: Path) -> Config:
    data_dir = config.data_dir.expanduser()
    if not data_dir.is_absolute():
        data_dir = base / data_dir
    models = []
    for model in config.embedding.models:
        name = model.name
        if model.backend != "openai" and name.startswith(("./", "../", "~")):  # a server's name is no path
            name = str((base / Path(name).expanduser()).resolve())
        models.append(model.model_copy(update={"name": name}))
    return config.model_copy(
        update={
            "data_dir": data_dir,
            "embedding": config.embedding.model_copy(update={"models": tuple(models)}),
        }
    )


def config_from_mapping(
    raw: Mapping[str, Any], *, base_dir: Path, source: str = "config", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a parsed TOML mapping; relative paths resolve against ``base_dir``; ``env:NAME`` values
    resolve against ``env`` (default: the process environment)."""
    try:
        config = Config.model_validate(dict(raw), context={"env": os.environ if env is None else env})
    except ValidationError as exc:
        raise ConfigError(source, _format_errors(exc)) from exc
    config._source = source if source != "defaults" else "the embedded defaults"
    return _resolve_paths(config, base_dir)


def load_config(path: Path | str | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load the config from ``path``, else ``$PAPERSYS_CONFIG``, else embedded defaults (cwd-relative)."""
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is None:
        return config_from_mapping({}, base_dir=Path.cwd(), source="defaults", env=env)
    file = Path(path).expanduser()
    try:
        raw = tomli.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(str(file), ["no such file"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), [f"cannot read: {exc}"]) from exc
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"invalid TOML: {exc}"]) from exc
    return config_from_mapping(raw, base_dir=file.resolve().parent, source=str(file), env=env)
