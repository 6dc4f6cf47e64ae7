"""Configuration: the project's one mechanism for where data lives, which store, how
many workers, and the rest of the spec's settings.

Use :func:`load_config`; it returns a frozen :class:`OrchestrationConfig` whose
:meth:`~OrchestrationConfig.describe` says where every value came from::

    cfg = load_config()                              # env, config file, defaults
    cfg = load_config("orchestration.json", max_workers=8)
    for key, info in cfg.describe().items():
        print(f"{key:24} {info['value']:40} {info['source']}")

Precedence
----------
For every value, highest first:

1. an explicit keyword argument to :func:`load_config` (``None`` means "not given",
   so an argument cannot set a nullable value back to ``null``);
2. the environment variable for that value, if it is set and not empty;
3. the JSON config file;
4. the default.

Values derived from others are derived from the *final* value: the default
``workflows_dir`` is ``<data_dir>/workflows`` whichever level ``data_dir`` came
from, and the default ``store_url`` is the SQLite file in that ``data_dir``. Each
key has its own precedence: ``CODOMYRMEX_STORE_URL`` still wins over the
derived default when ``data_dir`` is passed as an argument.

Environment variables
---------------------
``CODOMYRMEX_ORCHESTRATION_DIR``  the data directory (``data_dir``)
``CODOMYRMEX_MAX_WORKERS``        ``max_workers`` (an integer, 1..1024)
``CODOMYRMEX_RESOURCE_CONFIG``    ``resource_config``, the resource configuration file
``CODOMYRMEX_STORE_URL``          ``store_url`` (``memory://``, ``sqlite:///...``,
                                  ``postgresql://...``)
``CODOMYRMEX_CONFIG``             the JSON config file, when ``config_file`` is not given
``CODOMYRMEX_EXECUTOR``           ``executor``: ``threads``, ``processes`` or ``dask``
``CODOMYRMEX_PROCESS_WORKERS``    ``process_workers`` (an integer, 1..1024)
``CODOMYRMEX_DASK_SCHEDULER_ADDRESS``  ``dask_scheduler_address`` (``tcp://host:8786``)
``CODOMYRMEX_DASK_WORKERS``       ``dask_workers`` (an integer, 1..1024)

The other keys have no environment variable. An empty variable counts as unset.
``load_config(env=...)`` reads a given mapping instead of ``os.environ``.

The config file
---------------
Which file is read, first match wins: the ``config_file`` argument,
``$CODOMYRMEX_CONFIG``, else ``<data_dir>/config.json`` *if it exists*, where
``data_dir`` is the one known without a file (argument, environment or default);
a ``data_dir`` inside that discovered file is honoured but does not trigger a
second discovery. A named file (argument or ``CODOMYRMEX_CONFIG``) that does not
exist is an error; no file at all is fine (defaults).

The file is a JSON object (UTF-8). All keys are optional; the spec's keys plus this
project's additions (``data_dir``, ``store_url``, ``allow_imports``, ``enable_shell``)::

    {
      "max_workers": 4,
      "workflows_dir": "./workflows",
      "projects_dir": "./projects",
      "templates_dir": "./templates",
      "resource_config": "./resources.json",
      "performance_monitoring": true,
      "session_timeout": 3600,
      "cleanup_interval": 300,
      "data_dir": "./.orchestration",
      "store_url": "sqlite:////var/lib/codomyrmex/events.db",
      "allow_imports": ["mypkg."],
      "enable_shell": false,
      "executor": "threads",
      "process_workers": null,
      "dask_scheduler_address": null,
      "dask_workers": 2
    }

Types and ranges (every source):

* ``max_workers``: integer, 1..1024 (default 4).
* ``performance_monitoring`` (default true), ``enable_shell`` (default false):
  JSON ``true``/``false`` only -- not ``"yes"``, not ``1``.
* ``session_timeout``: seconds, a finite number ``> 0``, or ``null`` for no timeout
  (the default). ``0`` is rejected: use ``null`` to mean "never".
* ``cleanup_interval``: seconds, a finite number ``> 0`` (default 300).
* ``resource_config``: a path or ``null`` (default). It is not required to exist.
* ``store_url``: a URL (``scheme://...``), passed to the store as is; the scheme is
  checked when the store is opened. Default ``sqlite:///<absolute data_dir>/events.db``.
* ``allow_imports``: a list of module-name prefixes the action registry may import
  (``"mypkg."``, or ``"*"`` for any); default none. A prefix is matched with
  ``str.startswith``, so end it with ``.`` to mean "this package": ``"mypkg"``
  also matches ``mypkgevil``. Empty strings are rejected.
* ``recovery``: what a starting engine does with work in flight of engines whose
  lease expired (crashed processes): ``"resume"`` (default), ``"fail"`` or ``"off"``
  (see ``engine/recovery.py``).
* ``lease_ttl``: seconds, a finite number ``> 0`` (default 30): how long an engine's
  lease on its work lasts without a heartbeat (renewed every third of it). Another
  engine may take the work over only after that; keep it above the clock skew
  between machines.
* ``executor``: where actions run: ``"threads"`` (default), ``"processes"`` or
  ``"dask"`` (README "Executors and what each guarantees").
* ``process_workers``: worker processes of the ``processes`` executor, an integer
  1..1024, or ``null`` (default) for ``max_workers``.
* ``dask_scheduler_address``: the Dask scheduler of the ``dask`` executor
  (``tcp://host:8786``), or ``null`` (default) to start a local cluster of
  ``dask_workers`` worker processes (an integer 1..1024, default 2).
* Paths: strings. Unknown keys, duplicate keys, ``NaN``/``Infinity``, ``null`` for
  a non-nullable key and a top level that is not an object are errors.

Values from the file and from arguments must have their proper type (an argument
``max_workers="8"`` is an error); only environment values, which are always text,
are parsed (``CODOMYRMEX_MAX_WORKERS=8``).

Path resolution
---------------
``~`` is expanded, then a relative path is resolved against the directory of the
config file when it comes from the file, and against the current directory when it
comes from an argument, the environment or the default. Every path in the result is
absolute (``Path.resolve()``, so symlinks are resolved too).

Errors
------
Bad input raises :class:`domain.errors.ValidationError` naming the key and its
source (the argument, the environment variable, or the config file's path); for
malformed JSON it names the file and the line/column of the error.

The older helpers :func:`data_dir`, :func:`default_store_url` and
:func:`resolve_max_workers` remain for callers that need one value.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from domain.errors import ValidationError
from engine.leases import DEFAULT_LEASE_TTL
from engine.recovery import RECOVERY_POLICIES

__all__ = [
    "CONFIG_FILE_NAME",
    "CONFIG_KEYS",
    "DEFAULT_CLEANUP_INTERVAL",
    "DEFAULT_DATA_DIR",
    "DEFAULT_MAX_WORKERS",
    "ENV_CONFIG",
    "ENV_DASK_SCHEDULER_ADDRESS",
    "ENV_DASK_WORKERS",
    "ENV_DATA_DIR",
    "ENV_EXECUTOR",
    "ENV_MAX_WORKERS",
    "ENV_PROCESS_WORKERS",
    "ENV_RESOURCE_CONFIG",
    "ENV_STORE_URL",
    "EXECUTORS",
    "MAX_WORKERS_LIMIT",
    "OrchestrationConfig",
    "data_dir",
    "default_store_url",
    "executor_settings_from_env",
    "load_config",
    "resolve_executor",
    "resolve_max_workers",
]

DEFAULT_MAX_WORKERS = 4
MAX_WORKERS_LIMIT = 1024
DEFAULT_DATA_DIR = ".orchestration"
DEFAULT_CLEANUP_INTERVAL = 300.0
CONFIG_FILE_NAME = "config.json"

ENV_DATA_DIR = "CODOMYRMEX_ORCHESTRATION_DIR"
ENV_MAX_WORKERS = "CODOMYRMEX_MAX_WORKERS"
ENV_RESOURCE_CONFIG = "CODOMYRMEX_RESOURCE_CONFIG"
ENV_STORE_URL = "CODOMYRMEX_STORE_URL"
ENV_CONFIG = "CODOMYRMEX_CONFIG"
ENV_EXECUTOR = "CODOMYRMEX_EXECUTOR"
ENV_PROCESS_WORKERS = "CODOMYRMEX_PROCESS_WORKERS"
ENV_DASK_SCHEDULER_ADDRESS = "CODOMYRMEX_DASK_SCHEDULER_ADDRESS"
ENV_DASK_WORKERS = "CODOMYRMEX_DASK_WORKERS"
DEFAULT_EXECUTOR = "threads"
DEFAULT_DASK_WORKERS = 2
#: Where actions run (engine/executors.py): the values ``executor`` accepts.
EXECUTORS: tuple[str, ...] = ("threads", "processes", "dask")

#: Keys accepted in the config file and as keyword overrides of :func:`load_config`.
CONFIG_KEYS: tuple[str, ...] = (
    "data_dir",
    "store_url",
    "max_workers",
    "workflows_dir",
    "projects_dir",
    "templates_dir",
    "resource_config",
    "performance_monitoring",
    "session_timeout",
    "cleanup_interval",
    "allow_imports",
    "enable_shell",
    "recovery",
    "lease_ttl",
    "executor",
    "process_workers",
    "dask_scheduler_address",
    "dask_workers",
)

_ENV_FOR: Mapping[str, str] = MappingProxyType(
    {
        "data_dir": ENV_DATA_DIR,
        "max_workers": ENV_MAX_WORKERS,
        "resource_config": ENV_RESOURCE_CONFIG,
        "store_url": ENV_STORE_URL,
        "executor": ENV_EXECUTOR,
        "process_workers": ENV_PROCESS_WORKERS,
        "dask_scheduler_address": ENV_DASK_SCHEDULER_ADDRESS,
        "dask_workers": ENV_DASK_WORKERS,
    }
)

_SUBDIRS: Mapping[str, str] = MappingProxyType(
    {"workflows_dir": "workflows", "projects_dir": "projects", "templates_dir": "templates"}
)

_IMPORT_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.?$")


# -- where a value came from -------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """A source of values: its kind, its name (argument/env var/file path), and the
    directory relative paths from it are resolved against (``None``: the cwd)."""

    kind: Literal["argument", "env", "file", "default"]
    name: str = ""
    base: Path | None = None

    @property
    def label(self) -> str:
        """The source as :meth:`OrchestrationConfig.describe` reports it."""
        if self.kind in ("env", "file"):
            return f"{self.kind}:{self.name}"
        return self.kind

    def where(self, key: str) -> str:
        """The source as an error message names it."""
        if self.kind == "argument":
            return f"the {key!r} argument of {self.name}"
        if self.kind == "env":
            return f"environment variable {self.name}"
        if self.kind == "file":
            return f"config file {self.name}"
        return "the default"


_ARGUMENT = _Origin("argument", "load_config()")
_FIELD = _Origin("argument", "OrchestrationConfig()")
_DEFAULT = _Origin("default")


def _invalid(key: str, origin: _Origin, expected: str, value: object) -> ValidationError:
    return ValidationError(
        f"{key} from {origin.where(key)}: must be {expected}, got {value!r}",
        details={"key": key, "source": origin.label, "value": repr(value)},
        suggestions=[f"Correct {key} in {origin.where(key)}."],
    )


# -- converters: (key, raw value, origin) -> checked, normalized value ---------------


def _to_path(key: str, value: object, origin: _Origin) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise _invalid(key, origin, "a non-empty path", value)
    path = Path(value).expanduser()
    if not path.is_absolute() and origin.base is not None:
        path = origin.base / path
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:  # e.g. a symlink loop
        raise _invalid(key, origin, f"a resolvable path ({e})", value) from e


def _to_optional_path(key: str, value: object, origin: _Origin) -> Path | None:
    return None if value is None else _to_path(key, value, origin)


def _to_store_url(key: str, value: object, origin: _Origin) -> str:
    if not isinstance(value, str) or "://" not in value or not value.split("://", 1)[0]:
        raise _invalid(
            key, origin, "a store URL such as memory://, sqlite:///path/events.db or postgresql://...", value
        )
    return value


def _to_max_workers(key: str, value: object, origin: _Origin) -> int:
    expected = f"an integer from 1 to {MAX_WORKERS_LIMIT}"
    if origin.kind == "env" and isinstance(value, str):
        try:
            parsed: object = int(value.strip())
        except ValueError as e:
            raise _invalid(key, origin, expected, value) from e
    else:
        parsed = value
    if isinstance(parsed, bool) or not isinstance(parsed, int) or not 1 <= parsed <= MAX_WORKERS_LIMIT:
        raise _invalid(key, origin, expected, value)
    return parsed


def _to_optional_max_workers(key: str, value: object, origin: _Origin) -> int | None:
    return None if value is None else _to_max_workers(key, value, origin)


def _to_executor(key: str, value: object, origin: _Origin) -> str:
    if isinstance(value, str) and origin.kind == "env":
        value = value.strip()
    if not isinstance(value, str) or value not in EXECUTORS:
        raise _invalid(key, origin, f"one of {', '.join(EXECUTORS)}", value)
    return value


def _to_optional_address(key: str, value: object, origin: _Origin) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise _invalid(key, origin, "a scheduler address such as tcp://host:8786, or null", value)
    return value.strip()


def _to_bool(key: str, value: object, origin: _Origin) -> bool:
    if not isinstance(value, bool):
        raise _invalid(key, origin, "true or false", value)
    return value


def _to_seconds(key: str, value: object, origin: _Origin) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(key, origin, "a number of seconds > 0", value)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise _invalid(key, origin, "a finite number of seconds > 0", value)
    return seconds


def _to_optional_seconds(key: str, value: object, origin: _Origin) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(key, origin, "a number of seconds > 0, or null", value)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise _invalid(key, origin, "a finite number of seconds > 0, or null for no timeout", value)
    return seconds


def _to_import_prefixes(key: str, value: object, origin: _Origin) -> tuple[str, ...]:
    expected = "a list of module-name prefixes such as ['mypkg.'] or ['*']"
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise _invalid(key, origin, expected, value)
    for prefix in value:
        if not isinstance(prefix, str) or not (prefix == "*" or _IMPORT_PREFIX.fullmatch(prefix)):
            raise _invalid(key, origin, f"{expected} (bad entry {prefix!r})", value)
    return tuple(value)


def _to_recovery(key: str, value: object, origin: _Origin) -> str:
    if value not in RECOVERY_POLICIES:
        raise _invalid(key, origin, f"one of {list(RECOVERY_POLICIES)}", value)
    return str(value)


_Converter = Callable[[str, object, _Origin], Any]

_CONVERTERS: Mapping[str, _Converter] = MappingProxyType(
    {
        "data_dir": _to_path,
        "store_url": _to_store_url,
        "max_workers": _to_max_workers,
        "workflows_dir": _to_path,
        "projects_dir": _to_path,
        "templates_dir": _to_path,
        "resource_config": _to_optional_path,
        "performance_monitoring": _to_bool,
        "session_timeout": _to_optional_seconds,
        "cleanup_interval": _to_seconds,
        "allow_imports": _to_import_prefixes,
        "enable_shell": _to_bool,
        "recovery": _to_recovery,
        "lease_ttl": _to_seconds,
        "executor": _to_executor,
        "process_workers": _to_optional_max_workers,
        "dask_scheduler_address": _to_optional_address,
        "dask_workers": _to_max_workers,
        "config_file": _to_optional_path,
    }
)


def _render(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


# -- the configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class OrchestrationConfig:
    """The resolved configuration. Build it with :func:`load_config`.

    Constructing it directly validates and normalizes every field as an argument of
    :func:`load_config` would be (relative paths against the current directory); such
    values are reported by :meth:`describe` as coming from ``"argument"``.
    """

    data_dir: Path
    store_url: str
    max_workers: int
    workflows_dir: Path
    projects_dir: Path
    templates_dir: Path
    resource_config: Path | None = None
    performance_monitoring: bool = True
    session_timeout: float | None = None
    cleanup_interval: float = DEFAULT_CLEANUP_INTERVAL
    allow_imports: tuple[str, ...] = ()
    enable_shell: bool = False
    recovery: str = "resume"
    lease_ttl: float = DEFAULT_LEASE_TTL
    executor: str = DEFAULT_EXECUTOR
    process_workers: int | None = None
    dask_scheduler_address: str | None = None
    dask_workers: int = DEFAULT_DASK_WORKERS
    config_file: Path | None = None
    _sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "_sources":
                object.__setattr__(self, f.name, _CONVERTERS[f.name](f.name, getattr(self, f.name), _FIELD))
        object.__setattr__(self, "_sources", MappingProxyType(dict(self._sources)))

    def describe(self) -> dict[str, dict[str, str]]:
        """For each field, its ``value`` (text; JSON for numbers, booleans, null and
        lists) and its ``source``: ``"argument"``, ``"env:NAME"``, ``"file:/path"`` or
        ``"default"``. A discovered ``<data_dir>/config.json`` has the source
        ``"default"`` in the ``config_file`` row."""
        return {
            f.name: {"value": _render(getattr(self, f.name)), "source": self._sources.get(f.name, "argument")}
            for f in fields(self)
            if f.name != "_sources"
        }


def _json_object_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_config_file(path: Path, origin: _Origin) -> dict[str, Any]:
    """The checked top-level object of the config file at ``path``."""
    how = origin.where("config_file") if origin.kind != "default" else f"discovered {CONFIG_FILE_NAME} in the data dir"
    where = f"config file {path} (from {how})"
    if not path.exists():
        raise ValidationError(
            f"{where} does not exist",
            details={"key": "config_file", "source": origin.label, "value": str(path)},
            suggestions=["Create the file, or correct the path."],
        )
    if not path.is_file():
        raise ValidationError(
            f"{where} is not a file", details={"key": "config_file", "source": origin.label, "value": str(path)}
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError(
            f"cannot read {where}: {e}", details={"key": "config_file", "source": origin.label, "value": str(path)}
        ) from e
    try:
        data = json.loads(text, object_pairs_hook=_json_object_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValidationError(
            f"config file {path}: invalid JSON at line {e.lineno} column {e.colno} (char {e.pos}): {e.msg}",
            details={"source": f"file:{path}", "line": e.lineno, "column": e.colno, "position": e.pos},
            suggestions=["Fix the JSON syntax at the position named in the message."],
        ) from e
    except ValueError as e:  # duplicate key, NaN/Infinity
        raise ValidationError(f"config file {path}: invalid JSON: {e}", details={"source": f"file:{path}"}) from e
    if not isinstance(data, dict):
        raise ValidationError(
            f"config file {path}: the top level must be a JSON object, got {type(data).__name__}",
            details={"source": f"file:{path}"},
        )
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ValidationError(
            f"config file {path}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(CONFIG_KEYS)}",
            details={"source": f"file:{path}", "unknown": unknown, "known": list(CONFIG_KEYS)},
            suggestions=["Remove or rename the unknown keys."],
        )
    return data


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: object,
) -> OrchestrationConfig:
    """Resolve the configuration: keyword overrides > environment > config file >
    defaults (see the module docstring). ``env`` replaces ``os.environ``.

    Raises :class:`ValidationError` for any bad value, naming the key and its source.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    unknown = sorted(set(overrides) - set(CONFIG_KEYS))
    if unknown:
        raise ValidationError(
            f"load_config(): unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"known: config_file, env, {', '.join(CONFIG_KEYS)}",
            details={"unknown": unknown, "known": list(CONFIG_KEYS)},
        )
    given = {k: v for k, v in overrides.items() if v is not None}

    def from_env(key: str) -> tuple[object, _Origin] | None:
        name = _ENV_FOR.get(key)
        if name is not None and environ.get(name):
            return environ[name], _Origin("env", name)
        return None

    def without_file(key: str) -> tuple[object, _Origin] | None:
        if key in given:
            return given[key], _ARGUMENT
        return from_env(key)

    # 1. which config file
    sources: dict[str, str] = {}
    file_origin: _Origin
    path: Path | None
    if config_file is not None:
        file_origin = _ARGUMENT
        path = _to_path("config_file", config_file, file_origin)
    elif environ.get(ENV_CONFIG):
        file_origin = _Origin("env", ENV_CONFIG)
        path = _to_path("config_file", environ[ENV_CONFIG], file_origin)
    else:
        raw, origin = without_file("data_dir") or (DEFAULT_DATA_DIR, _DEFAULT)
        candidate = _to_path("data_dir", raw, origin) / CONFIG_FILE_NAME
        file_origin = _DEFAULT
        path = candidate if candidate.is_file() else None
    file_values: dict[str, Any] = {}
    file_source: _Origin | None = None
    if path is not None:
        file_values = _read_config_file(path, file_origin)
        file_source = _Origin("file", str(path), path.parent)
        sources["config_file"] = file_origin.label
    else:
        sources["config_file"] = "default"

    # 2. every key: argument > env > file > default (derived defaults from the final data_dir)
    values: dict[str, Any] = {"config_file": path}

    def pick(key: str) -> tuple[object, _Origin] | None:
        found = without_file(key)
        if found is None and file_source is not None and key in file_values:
            found = file_values[key], file_source
        return found

    data = pick("data_dir") or (DEFAULT_DATA_DIR, _DEFAULT)
    values["data_dir"] = _to_path("data_dir", *data)
    sources["data_dir"] = data[1].label
    defaults: dict[str, object] = {
        "store_url": f"sqlite:///{values['data_dir'] / 'events.db'}",
        "max_workers": DEFAULT_MAX_WORKERS,
        "resource_config": None,
        "performance_monitoring": True,
        "session_timeout": None,
        "cleanup_interval": DEFAULT_CLEANUP_INTERVAL,
        "allow_imports": (),
        "enable_shell": False,
        "recovery": "resume",
        "lease_ttl": DEFAULT_LEASE_TTL,
        "executor": DEFAULT_EXECUTOR,
        "process_workers": None,
        "dask_scheduler_address": None,
        "dask_workers": DEFAULT_DASK_WORKERS,
        **{key: values["data_dir"] / sub for key, sub in _SUBDIRS.items()},
    }
    for key in CONFIG_KEYS:
        if key == "data_dir":
            continue
        raw, origin = pick(key) or (defaults[key], _DEFAULT)
        values[key] = _CONVERTERS[key](key, raw, origin)
        sources[key] = origin.label
    return OrchestrationConfig(**values, _sources=sources)


# -- single-value helpers (used by the orchestrator and the CLI) ----------------------


def data_dir(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$CODOMYRMEX_ORCHESTRATION_DIR``, else
    ``.orchestration`` (not resolved; the config file is not consulted)."""
    env = os.environ if env is None else env
    if explicit is not None:
        return Path(explicit)
    return Path(env.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR)


def default_store_url(explicit_dir: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> str:
    """``CODOMYRMEX_STORE_URL`` if set, else the SQLite file in the data directory."""
    env = os.environ if env is None else env
    if explicit_dir is None and env.get(ENV_STORE_URL):
        return env[ENV_STORE_URL]
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
    """``explicit``, else ``$CODOMYRMEX_MAX_WORKERS``, else ``file_value``, else 4."""
    env = os.environ if env is None else env
    if explicit is not None:
        return _positive_int(explicit, "the argument")
    if env.get(ENV_MAX_WORKERS):
        return _positive_int(env[ENV_MAX_WORKERS], ENV_MAX_WORKERS)
    if file_value is not None:
        return _positive_int(file_value, "the config file")
    return DEFAULT_MAX_WORKERS


def resolve_executor(explicit: object = None, env: Mapping[str, str] | None = None) -> str:
    """``explicit``, else ``$CODOMYRMEX_EXECUTOR``, else ``"threads"`` (checked)."""
    env = os.environ if env is None else env
    if explicit is not None:
        return _to_executor("executor", explicit, _Origin("argument", "TaskOrchestrator()"))
    if env.get(ENV_EXECUTOR):
        return _to_executor("executor", env[ENV_EXECUTOR], _Origin("env", ENV_EXECUTOR))
    return DEFAULT_EXECUTOR


def executor_settings_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``process_workers``, ``dask_scheduler_address`` and ``dask_workers`` from their
    environment variables (else their defaults), checked: for an orchestrator built
    without a configuration."""
    env = os.environ if env is None else env
    out: dict[str, Any] = {
        "process_workers": None,
        "dask_scheduler_address": None,
        "dask_workers": DEFAULT_DASK_WORKERS,
    }
    for key in out:
        name = _ENV_FOR[key]
        if env.get(name):
            out[key] = _CONVERTERS[key](key, env[name], _Origin("env", name))
    return out
