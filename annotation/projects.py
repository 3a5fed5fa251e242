"""Creating and configuring projects (the CLI, the API and the admin share this)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.text import slugify

from annotation.audit import audit_record
from annotation.languages import language_get_or_create
from annotation.models import Language, Project, TaskType
from annotation.rows import fetch_one
from annotation.schema import schema_validate


def project_by_slug(slug: Any) -> Project | None:
    """The project with this slug, or None. Every claim (the work page, the API's claim and
    any API call under /projects/{slug}/) starts here, so it is one hand-written read
    (annotation/rows.py), not an ORM query compiled anew."""
    if not isinstance(slug, str):
        return None
    return fetch_one(Project, "t.slug = %s", [slug])


def project_language(*, project: Project, tag: str) -> Language | None:
    """The project's language with this (normalised) tag, or None when the project does
    not have it; one hand-written read, as `project_by_slug`."""
    through = Project.languages.through._meta.db_table
    return fetch_one(
        Language,
        f"t.tag = %s AND EXISTS (SELECT 1 FROM {through} pl WHERE pl.project_id = %s AND pl.language_id = t.id)",
        [tag, project.pk],
    )


_OPTIONS = frozenset({
    "description", "lease_seconds", "agreement_threshold", "honeypot_rate", "honeypot_window",
    "honeypot_threshold", "max_chars_per_second", "adjudication_rating_spread", "queue_on_import",
})


def _options_check(*, overlap: int | None, options: dict[str, Any]) -> None:
    if overlap is not None and not 1 <= overlap <= 50:
        raise ValidationError("overlap must be between 1 and 50 judgments per item")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValidationError(f"unknown project options: {', '.join(sorted(unknown))}")
    if "honeypot_rate" in options and not 0 <= options["honeypot_rate"] <= 1:
        raise ValidationError("honeypot_rate must be between 0 and 1")
    if "lease_seconds" in options and options["lease_seconds"] < 10:
        raise ValidationError("lease_seconds must be at least 10")


def project_create_or_update(
    *,
    slug: str,
    task_type: str,
    languages: list[str],
    name: str | None = None,
    schema: dict[str, Any] | None = None,
    overlap: int | None = None,
    actor: Any = None,
    **options: Any,
) -> tuple[Project, bool]:
    """Create the project or update it; returns (project, created).

    Changing the task type of an existing project is refused: its judgments would no
    longer fit the schema.
    """
    if not slug or slugify(slug) != slug:
        raise ValidationError(f"slug {slug!r} must be lowercase letters, digits and hyphens")
    if task_type not in TaskType.values:
        raise ValidationError(f"unknown task type {task_type!r}; use one of {', '.join(TaskType.values)}")
    if not languages:
        raise ValidationError("a project needs at least one language")
    clean_schema = schema_validate(task_type=task_type, schema=schema)
    _options_check(overlap=overlap, options=options)
    language_objs = [language_get_or_create(tag=tag) for tag in languages]
    with transaction.atomic():
        project = Project.objects.select_for_update().filter(slug=slug).first()
        created = project is None
        if project is None:
            project = Project(slug=slug, task_type=task_type)
        elif project.task_type != task_type:
            raise ValidationError(
                f"project {slug} is a {project.task_type} project; its task type cannot change to {task_type}"
            )
        project.name = name or project.name or slug.replace("-", " ").title()
        project.schema = clean_schema
        if overlap is not None:
            project.overlap = overlap
        for key, value in options.items():
            setattr(project, key, value)
        project.full_clean(exclude=["languages", "leads"])
        project.save()
        project.languages.add(*language_objs)
        audit_record(
            verb="project.create" if created else "project.update",
            actor=actor,
            project=project,
            obj=project,
            data={"languages": [lang.tag for lang in language_objs], "schema": clean_schema},
        )
    return project, created


def projects_for_user(*, user: Any) -> QuerySet[Project]:
    """Projects a user works or leads."""
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(
        Q(leads=user) | Q(qualifications__evaluator=user)
    ).distinct()


def project_is_lead(*, project: Project, user: Any) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or project.leads.filter(pk=user.pk).exists()))
