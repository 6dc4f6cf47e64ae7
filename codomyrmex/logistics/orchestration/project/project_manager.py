"""Compatibility module: the names the original ``project_manager`` module had."""

from domain.enums import ProjectStatus, ProjectType
from engine.defaults import get_project_manager
from engine.project_manager import ProjectManager
from engine.project_models import Project

__all__ = ["Project", "ProjectManager", "ProjectStatus", "ProjectType", "get_project_manager"]
