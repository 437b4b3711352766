"""Secrets in the config: ``env:NAME`` references resolved at load, and credentials split out of a URL, so
that a token or password lives only in a ``SecretStr`` (masked in repr, str and dumps) and in the header."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

ENV_PREFIX = "env:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]*$")  # visible ASCII: what an Authorization header can carry


def resolve_env_ref(value: object, env: Mapping[str, str]) -> object:
    """``"env:NAME"`` → the value of the environment variable NAME; anything else unchanged.

    Raises ValueError naming the variable (never a value) when it is malformed, unset or empty.
    """
    if not isinstance(value, str) or not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX) :]
    if not _ENV_NAME.match(name):
        raise ValueError("is not a valid environment reference (write env:NAME, e.g. env:PAPERSYS_OAI_TOKEN)")
    if name not in env:
        raise ValueError(f"environment variable {name} is not set")
    if not env[name]:
        raise ValueError(f"environment variable {name} is empty")
    return env[name]


def check_header_value(value: str) -> None:
    """A token goes into an HTTP header: refuse what requests would reject with the value in its message."""
    if not _HEADER_SAFE.match(value):
        raise ValueError("must be printable ASCII without spaces or line breaks (it is sent in an HTTP header)")


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``https://user:pw@host/oai`` → (``https://host/oai``, (user, pw)); a URL without userinfo unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))
