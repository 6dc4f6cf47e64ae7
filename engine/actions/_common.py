"""Helpers shared by the built-in actions: argument checks, file discovery, parsing
Python source and writing files atomically.

File discovery (:func:`discover`) is the same for every action that walks a tree:

- ``path`` may be a file (then only that file is used, whatever ``include`` says, and
  result paths are its bare name) or a directory (walked recursively, in sorted order,
  without following directory symlinks);
- a file is taken when its *name* matches one of the ``include`` glob patterns;
- a directory or file below the root whose *name* matches one of the ``exclude`` patterns
  is skipped (the root itself is never excluded);
- at most ``max_files`` files are taken; ``truncated`` says that more matched.

Patterns are matched case-sensitively with :func:`fnmatch.fnmatchcase`.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import threading
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_EXCLUDE",
    "MAX_FILE_BYTES",
    "Discovery",
    "discover",
    "parse_python",
    "patterns",
    "positive_int",
    "write_text_atomic",
]

DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    "build",
    "dist",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    ".eggs",
    "*.egg-info",
)
"""Directory (and file) names skipped by default when walking a tree."""

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Files larger than this are not read; the actions report them instead."""

_PARSE_LOCK = threading.Lock()


def patterns(value: object, name: str) -> tuple[str, ...]:
    """``value`` as a tuple of glob patterns: one string or a list/tuple of strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
        return tuple(value)
    raise ValueError(f"{name} must be a string or a list of strings, got {value!r}")


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an int >= 1 (bool is refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Discovery:
    """The files found under a path: ``root`` is what result paths are relative to."""

    root: Path
    files: list[Path]
    truncated: bool

    def rel(self, file: Path) -> str:
        """``file`` relative to ``root``, with ``/`` separators."""
        return file.relative_to(self.root).as_posix()


def _excluded(name: str, exclude: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in exclude)


def discover(
    path: str | os.PathLike[str],
    include: Sequence[str],
    exclude: Sequence[str],
    max_files: int,
) -> Discovery:
    """Find the files under ``path`` (see the module docstring for the rules).

    Raises FileNotFoundError when ``path`` does not exist."""
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"path must be a string, got {path!r}")
    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(f"path {os.fspath(path)!r} does not exist (resolved to {target.resolve()})")
    target = target.resolve()
    if target.is_file():
        return Discovery(target.parent, [target], False)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames[:] = sorted(d for d in dirnames if not _excluded(d, exclude))
        for name in sorted(filenames):
            if _excluded(name, exclude) or not any(fnmatch.fnmatchcase(name, p) for p in include):
                continue
            file = Path(dirpath, name)
            if not file.is_file():  # a dangling symlink, a socket, a device...
                continue
            if len(found) == max_files:
                return Discovery(target, found, True)
            found.append(file)
    return Discovery(target, found, False)


def parse_python(source: bytes, filename: str) -> ast.Module:
    """``ast.parse`` with compile-time warnings silenced.

    Python warns about e.g. invalid escape sequences while parsing; under a filter that
    turns warnings into errors (as pytest runs here) those would make a valid file look
    unparsable. The warnings filter is process-global, so the parse runs under a lock;
    other threads' warnings raised during that window are not shown.

    Raises SyntaxError, ValueError (e.g. null bytes) or RecursionError."""
    with _PARSE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, filename=filename)


def write_text_atomic(path: Path, text: str) -> int:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename, creating
    parent directories. Returns the number of bytes written."""
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:  # not mkstemp: the file gets the usual umask permissions
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)
