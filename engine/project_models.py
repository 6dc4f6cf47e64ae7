"""The spec's ``Project`` data model, and ``ProjectTemplate`` (a parsed template file).

Like the task models, these are the API's vocabulary, not the state: a project is
recorded as ``project.*`` events and ``Project`` objects are rebuilt from the project
view, so their fields show what the log says.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.enums import ProjectStatus, ProjectType
from projections.projects import ProjectRecord

__all__ = ["Project", "ProjectTemplate"]


@dataclass
class Project:
    """A project (the spec's fields first, then the ones the original module had).

    ``milestones`` maps a milestone's name to ``{"data": ..., "reached_at": iso}``;
    ``metrics`` is what the project's linked workflow runs add up to;
    ``active_workflows`` counts its runs in flight.
    """

    name: str
    description: str = ""
    type: ProjectType = ProjectType.CUSTOM
    path: str = ""
    status: ProjectStatus = ProjectStatus.PLANNING
    workflows: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    version: str = "1.0.0"
    template: str | None = None
    required_modules: list[str] = field(default_factory=list)
    optional_modules: list[str] = field(default_factory=list)
    author: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    milestones: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    active_workflows: int = 0

    @classmethod
    def from_record(cls, rec: ProjectRecord, active_workflows: int = 0) -> Project:
        return cls(
            name=rec.name,
            description=rec.description,
            type=rec.type,
            path=rec.path,
            status=rec.status,
            workflows=list(rec.workflows),
            config=copy.deepcopy(rec.config),
            version=rec.version,
            template=rec.template,
            required_modules=list(rec.required_modules),
            optional_modules=list(rec.optional_modules),
            author=rec.author,
            tags=list(rec.tags),
            created_at=rec.created_at,
            updated_at=rec.updated_at,
            milestones={
                name: {"data": copy.deepcopy(m.data), "reached_at": m.reached_at.isoformat()}
                for name, m in rec.milestones.items()
            },
            metrics=rec.metrics(),
            active_workflows=active_workflows,
        )


@dataclass(frozen=True)
class ProjectTemplate:
    """One template file in the original project's format (see ``engine.templates``).

    ``directory_structure`` and the destinations of ``template_files`` are relative
    POSIX paths without ``..``; ``files_dir`` is where the sources of
    ``template_files`` are looked up (``<templates dir>/<name>/``).
    """

    name: str
    type: ProjectType
    source: Path
    description: str = ""
    version: str = "1.0"
    directory_structure: tuple[str, ...] = ()
    template_files: dict[str, str] = field(default_factory=dict)
    workflows: tuple[str, ...] = ()
    required_modules: tuple[str, ...] = ()
    optional_modules: tuple[str, ...] = ()
    default_config: dict[str, Any] = field(default_factory=dict)
    documentation_config: dict[str, Any] = field(default_factory=dict)
    author: str = ""
    created_at: str | None = None

    @property
    def files_dir(self) -> Path:
        return self.source.parent / self.name
