"""Project templates: the package's own, and the parser of the original file format.

The format (the upstream ``templates/*.json``)::

    {"name": "ai_analysis", "type": "ai_analysis", "description": "...", "version": "1.0",
     "directory_structure": ["src/", "reports/"],          # made inside the project
     "template_files": {"*.md": "docs/"},                   # <templates dir>/<name>/<glob> -> dir
     "workflows": ["ai-analysis"], "required_modules": [...], "optional_modules": [...],
     "default_config": {...},                               # the project's config
     "documentation_config": {...}, "author": "", "created_at": "2025-09-16T13:22:09+00:00"}

Only ``name`` and ``type`` (a ``ProjectType`` value) are required. ``documentation_config``
(and the original's ``template_generators`` and ``doc_links``) are accepted and kept, not
acted upon: this engine writes API docs with the ``documentation.generate_docs`` action.
Unknown keys are errors, so a typo does not silently change a template. Paths are
relative, without ``..``: a template cannot reach outside the project it makes.

The package ships ``ai_analysis``, ``data_pipeline`` and ``web_application``, written for
this engine's built-in actions, and a definition of each workflow they name (in
``workflows/``, the workflow file format). A template in the configured templates
directory replaces the package's template of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import msgspec

from domain.enums import ProjectType
from domain.errors import ValidationError
from engine.codec import json_problem
from engine.models import WorkflowStep
from engine.project_models import ProjectTemplate
from engine.workflow_files import step_spec

__all__ = ["PACKAGE_TEMPLATES", "PACKAGE_WORKFLOWS", "load_templates", "package_workflow", "parse_template_file"]

PACKAGE_TEMPLATES = Path(__file__).resolve().parent
PACKAGE_WORKFLOWS = PACKAGE_TEMPLATES / "workflows"

_LISTS = ("directory_structure", "workflows", "required_modules", "optional_modules")
_DICTS = ("default_config", "documentation_config", "template_generators", "doc_links")
_TEXTS = ("description", "version", "author", "created_at")
_KEYS = frozenset({"name", "type", "template_files", *_LISTS, *_DICTS, *_TEXTS})


def _fail(where: Path, message: str) -> ValidationError:
    return ValidationError(f"template file {where}: {message}", code="INVALID_TEMPLATE", details={"file": str(where)})


def _relative_path(value: object, what: str) -> str:
    """``value`` as a normalized relative POSIX path that stays inside its base; a
    :class:`ValidationError` naming ``what`` otherwise."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValidationError(f"{what} must be a non-empty relative path, got {value!r}")
    posix = PurePosixPath(value.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(value).is_absolute() or PureWindowsPath(value).drive:
        raise ValidationError(f"{what} {value!r} is absolute; it must be relative", code="PATH_OUTSIDE")
    if ".." in posix.parts:
        raise ValidationError(f"{what} {value!r} contains '..'; it must stay inside its directory", code="PATH_OUTSIDE")
    parts = [p for p in posix.parts if p != "."]
    if not parts:
        raise ValidationError(f"{what} {value!r} names no directory below its base")
    return "/".join(parts)


def parse_template_file(path: Path) -> ProjectTemplate:
    """The template in ``path``; :class:`ValidationError` naming the file and the key."""
    try:
        data = msgspec.json.decode(path.read_bytes())
    except OSError as e:
        raise _fail(path, f"cannot read: {e}") from e
    except msgspec.DecodeError as e:
        raise _fail(path, f"malformed JSON: {e}") from e
    if not isinstance(data, dict):
        raise _fail(path, "the top level must be an object with at least 'name' and 'type'")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(path, f"unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name or name in (".", ".."):
        raise _fail(path, f"'name' must be a non-empty name without '/', got {name!r}")
    kinds = [t.value for t in ProjectType]
    if data.get("type") not in kinds:
        raise _fail(path, f"'type' must be one of {kinds}, got {data.get('type')!r}")
    kind = ProjectType(data["type"])
    for key in _TEXTS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _fail(path, f"{key!r} must be a string, got {data[key]!r}")
    if isinstance(data.get("created_at"), str):
        try:
            datetime.fromisoformat(data["created_at"])
        except ValueError:
            raise _fail(path, f"'created_at' must be an ISO 8601 time, got {data['created_at']!r}") from None
    for key in _LISTS:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise _fail(path, f"{key!r} must be a list of non-empty strings, got {value!r}")
    for key in _DICTS:
        value = data.get(key, {})
        problem = json_problem(value, key) if isinstance(value, dict) else f"{key} must be an object"
        if problem is not None:
            raise _fail(path, problem)
    files = data.get("template_files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise _fail(path, "'template_files' must map source glob patterns to destination directories")
    try:
        dirs = tuple(_relative_path(d, "directory_structure entry") for d in data.get("directory_structure", []))
        file_map = {
            _relative_path(src, "template_files pattern"): (
                "" if dest.strip() in ("", ".", "./") else _relative_path(dest, f"template_files[{src!r}]")
            )
            for src, dest in files.items()
        }
    except ValidationError as e:
        raise _fail(path, e.message) from e
    return ProjectTemplate(
        name=name,
        type=kind,
        source=path,
        description=data.get("description") or "",
        version=data.get("version") or "1.0",
        directory_structure=dirs,
        template_files=file_map,
        workflows=tuple(data.get("workflows", [])),
        required_modules=tuple(data.get("required_modules", [])),
        optional_modules=tuple(data.get("optional_modules", [])),
        default_config=dict(data.get("default_config", {})),
        documentation_config=dict(data.get("documentation_config", {})),
        author=data.get("author") or "",
        created_at=data.get("created_at"),
    )


def load_templates(directories: Iterable[Path]) -> tuple[dict[str, ProjectTemplate], list[tuple[str, str]]]:
    """Every ``*.json`` template in ``directories`` (a later directory's template
    replaces an earlier one of the same name), and ``(file, reason)`` for each file that
    did not load; one bad file does not stop the others."""
    templates: dict[str, ProjectTemplate] = {}
    errors: list[tuple[str, str]] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        seen: dict[str, Path] = {}
        for path in sorted(directory.glob("*.json")):
            try:
                template = parse_template_file(path)
                if template.name in seen:
                    raise _fail(path, f"template name {template.name!r} is already used by {seen[template.name].name}")
            except ValidationError as e:
                errors.append((path.name, e.message))
                continue
            seen[template.name] = path
            templates[template.name] = template
    return templates, errors


def package_workflow(name: str) -> list[WorkflowStep] | None:
    """The package's definition of workflow ``name`` (one a package template names),
    or None when it ships none."""
    path = next((p for p in PACKAGE_WORKFLOWS.glob("*.json") if p.stem == name), None)
    if path is None:
        return None
    doc: Mapping[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for i, raw in enumerate(doc["steps"]):
        step_spec(raw, f"{path} step {i}")  # the file is checked as the user's would be
    return [WorkflowStep(**raw) for raw in doc["steps"]]
