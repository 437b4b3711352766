"""The one exception tree of papersys: every error a user can cause or meet is a PapersysError."""

from __future__ import annotations

from collections.abc import Sequence


class PapersysError(Exception):
    """Base class. ``str(err)`` is the one-line message the CLI prints; ``exit_code`` its exit status."""

    exit_code = 1


class UsageError(PapersysError):
    """Bad arguments to a command (dates out of order, unknown model alias, …)."""

    exit_code = 2


class ConfigError(PapersysError):
    """The configuration file is unreadable or invalid; one problem per line."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


class StoreError(PapersysError):
    """A store file is unreadable, has the wrong schema, or cannot be written."""

    def __init__(self, path: object, problem: str, hint: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        message = f"{self.path}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class StorageError(StoreError):
    """The storage under the data dir failed a write: the disk is full, the file system is read-only, a
    directory vanished, permission was denied. Not the user's input and not a damaged file: exit status 4,
    so that a wrapper (cron, systemd) can tell "free space and rerun" from "fix the command"."""

    exit_code = 4


class ManifestMismatchError(StoreError):
    """The configured model no longer matches the manifest its stored vectors were made with."""

    exit_code = 2


class LockBusyError(PapersysError):
    """Another papersys process holds a store lock for longer than the configured timeout."""

    exit_code = 3

    def __init__(self, lock: str, holder: str, waited_s: float) -> None:
        self.lock = lock
        self.holder = holder
        self.waited_s = waited_s
        super().__init__(f"lock {lock!r} is held by {holder}; gave up after {waited_s:g}s")


class HarvestError(PapersysError):
    """An OAI-PMH harvest window failed after its retries ran out; nothing of it was committed."""

    def __init__(self, window: str, reason: str) -> None:
        self.window = window
        self.reason = reason
        super().__init__(f"harvest of {window} failed: {reason}")


class SnapshotError(PapersysError):
    """A metadata snapshot file cannot be read."""


class EngineError(PapersysError):
    """An embedding engine failed: bad model, crashed or hung worker, invalid vectors."""

    def __init__(self, model: str, detail: str) -> None:
        self.model = model
        self.detail = detail
        super().__init__(f"engine for model {model!r}: {detail}")


class ExecutorError(PapersysError):
    """The executor that runs the engines cannot start: the Ray cluster at ``ray_address`` does not answer."""


class ExecutorMissingError(ExecutorError):
    """``executor = "ray"`` but Ray is not installed: the config asks for an extra that is missing."""

    exit_code = 2


class EngineConfigError(EngineError):
    """The engine answers, but not as the model's config says (another dim, a refused key, an unknown model
    name or URL): the config needs fixing, so the exit status is that of bad input."""

    exit_code = 2


class SearchError(PapersysError):
    """A query cannot be answered: no index for the model, an index built for other vectors, an unknown
    paper id, or a paper without a vector for that model."""


class Interrupted(PapersysError):
    """A run was asked to stop (SIGTERM/SIGINT) and stopped at a safe point."""

    exit_code = 130
