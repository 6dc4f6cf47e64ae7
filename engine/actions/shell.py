"""``shell`` actions: run a program. Registered only with
``register_builtin_actions(..., enable_shell=True)``, because a task that can run any
program can do anything the process can."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_OUTPUT_CHARS", "run"]

MAX_OUTPUT_CHARS = 1_000_000


def _tail(text: str) -> tuple[str, bool]:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text, False
    return text[-MAX_OUTPUT_CHARS:], True


def run(
    argv: Sequence[str],
    timeout: float = 60,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``argv`` without a shell and capture its output.

    Runs ``subprocess.run(argv, shell=False, capture_output=True, text=True,
    timeout=timeout)`` with stdin closed (``/dev/null``) and undecodable output bytes
    replaced (U+FFFD).

    Parameters:
        argv: the program and its arguments, a non-empty list of strings (a single
            string is refused: there is no shell to split it).
        timeout: seconds, > 0. When it passes the program is killed and
            ``subprocess.TimeoutExpired`` is raised (the task fails and may be retried).
        cwd: the working directory (default: this process's).
        env: variables added to (overriding) this process's environment.

    Returns::

        {"argv": [str, ...], "returncode": int, "ok": bool,   # ok: returncode == 0
         "stdout": str, "stderr": str,                        # the last 1,000,000 characters
         "stdout_truncated": bool, "stderr_truncated": bool,
         "duration": float}                                    # seconds

    A non-zero return code is *not* an exception: it is returned with ``ok: false``, so
    the task completes and its result says how the program ended. A program that cannot
    be started raises (``FileNotFoundError``, ``PermissionError``).
    """
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence) or not argv:
        raise ValueError(f"argv must be a non-empty list of strings (no shell is used), got {argv!r}")
    if not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv must hold only strings, got {argv!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if cwd is not None and not isinstance(cwd, str | os.PathLike):
        raise ValueError(f"cwd must be a string, got {cwd!r}")
    full_env: dict[str, str] | None = None
    if env is not None:
        if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError(f"env must map strings to strings, got {env!r}")
        full_env = {**os.environ, **env}
    started = time.monotonic()
    completed = subprocess.run(  # shell=False and an argv list, by design
        list(argv),
        shell=False,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    duration = time.monotonic() - started
    stdout, stdout_truncated = _tail(completed.stdout)
    stderr, stderr_truncated = _tail(completed.stderr)
    return {
        "argv": list(argv),
        "returncode": completed.returncode,
        "ok": completed.returncode == 0,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_truncated": stdout_truncated,
        "stderr_truncated": stderr_truncated,
        "duration": round(duration, 6),
    }
