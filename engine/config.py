"""Configuration: where data lives, which store, how many workers.

Precedence, highest first: an explicit argument, the environment
(``CODOMYRMEX_ORCHESTRATION_DIR``, ``CODOMYRMEX_MAX_WORKERS``,
``CODOMYRMEX_RESOURCE_CONFIG``, ``CODOMYRMEX_STORE_URL``), the JSON config file, the
default. The data directory defaults to ``./.orchestration`` and holds ``events.db``,
``workflows/``, ``projects/`` and ``templates/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from domain.errors import ValidationError

__all__ = ["DEFAULT_MAX_WORKERS", "data_dir", "default_store_url", "resolve_max_workers"]

DEFAULT_MAX_WORKERS = 4
MAX_WORKERS_LIMIT = 1024


def data_dir(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if explicit is not None:
        return Path(explicit)
    return Path(env.get("CODOMYRMEX_ORCHESTRATION_DIR") or ".orchestration")


def default_store_url(explicit_dir: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> str:
    """``CODOMYRMEX_STORE_URL`` if set, else the SQLite file in the data directory."""
    env = os.environ if env is None else env
    if explicit_dir is None and env.get("CODOMYRMEX_STORE_URL"):
        return env["CODOMYRMEX_STORE_URL"]
    path = data_dir(explicit_dir, env).expanduser().resolve() / "events.db"
    return f"sqlite:///{path}"


def _positive_int(value: object, source: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(f"max_workers from {source} must be an integer, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError as e:
            raise ValidationError(f"max_workers from {source} must be an integer, got {value!r}") from e
    if not isinstance(value, int):
        raise ValidationError(f"max_workers from {source} must be an integer, got {value!r}")
    if not 1 <= value <= MAX_WORKERS_LIMIT:
        raise ValidationError(f"max_workers from {source} must be between 1 and {MAX_WORKERS_LIMIT}, got {value}")
    return value


def resolve_max_workers(
    explicit: object = None,
    file_value: object = None,
    env: Mapping[str, str] | None = None,
) -> int:
    env = os.environ if env is None else env
    if explicit is not None:
        return _positive_int(explicit, "the argument")
    if env.get("CODOMYRMEX_MAX_WORKERS"):
        return _positive_int(env["CODOMYRMEX_MAX_WORKERS"], "CODOMYRMEX_MAX_WORKERS")
    if file_value is not None:
        return _positive_int(file_value, "the config file")
    return DEFAULT_MAX_WORKERS
