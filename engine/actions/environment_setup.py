"""``environment_setup`` actions: facts about the machine this process runs on."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

import psutil

__all__ = ["MIN_PYTHON", "REQUIRED_PACKAGES", "check_environment"]

MIN_PYTHON = (3, 11)
REQUIRED_PACKAGES: tuple[str, ...] = ("eventsourcing", "transitions", "msgspec", "psutil")


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


def _package_check(name: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - a broken package can raise anything on import
        return _check(f"import {name}", False, f"{type(e).__name__}: {e}")
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(module, "__version__", "unknown version"))
    return _check(f"import {name}", True, version)


def check_environment(packages: Sequence[str] | None = None) -> dict[str, Any]:
    """Describe the real machine and check what this project needs.

    Parameters:
        packages: module names that must be importable; default
            ``("eventsourcing", "transitions", "msgspec", "psutil")``.

    Returns::

        {
          "python": {"version": "3.11.7", "implementation": "CPython", "executable": str},
          "platform": {"system": str, "release": str, "machine": str, "platform": str},
          "cpu": {"logical": int | None, "physical": int | None},
          "memory": {"total": int, "available": int},          # bytes (psutil)
          "disk": {"path": str, "total": int, "used": int, "free": int},  # bytes, the cwd's filesystem
          "checks": [{"name": str, "ok": bool, "detail": str}, ...],
          "ok": bool,                                          # every check passed
        }

    The checks, in order: ``python>=3.11``, ``import <package>`` for each package (detail:
    its installed version, or the import error) and ``cwd writable``. A failed check is
    reported, not raised.
    """
    wanted = REQUIRED_PACKAGES if packages is None else packages
    if isinstance(wanted, str) or not all(isinstance(p, str) and p for p in wanted):
        raise ValueError(f"packages must be a list of module names, got {packages!r}")
    cwd = os.getcwd()
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(cwd)
    version = platform.python_version()
    checks = [
        _check(
            f"python>={MIN_PYTHON[0]}.{MIN_PYTHON[1]}",
            sys.version_info[:2] >= MIN_PYTHON,
            version,
        )
    ]
    checks.extend(_package_check(name) for name in wanted)
    checks.append(_check("cwd writable", os.access(cwd, os.W_OK), cwd))
    return {
        "python": {
            "version": version,
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "cpu": {"logical": psutil.cpu_count(logical=True), "physical": psutil.cpu_count(logical=False)},
        "memory": {"total": int(memory.total), "available": int(memory.available)},
        "disk": {"path": cwd, "total": int(disk.total), "used": int(disk.used), "free": int(disk.free)},
        "checks": checks,
        "ok": all(c["ok"] for c in checks),
    }
