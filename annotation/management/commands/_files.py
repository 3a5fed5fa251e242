"""What the file-import commands share: the project and the file they were given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from annotation.models import Project


def import_target(opts: dict[str, Any]) -> tuple[Project, Path]:
    """The project named by --project and the FILE argument, or a CommandError saying which is wrong."""
    project = Project.objects.filter(slug=opts["project"]).first()
    if project is None:
        raise CommandError(f"no project with slug {opts['project']!r}")
    path: Path = opts["file"]
    if not path.is_file():
        raise CommandError(f"{path} is not a file")
    return project, path
