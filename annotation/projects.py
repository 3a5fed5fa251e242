"""Creating and configuring projects (the CLI, the API and the admin share this)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils.text import slugify

from annotation.audit import audit_record
from annotation.languages import language_get_or_create
from annotation.models import ApiToken, Item, Language, Project, TaskType
from annotation.rows import fetch_one
from annotation.schema import schema_validate
from annotation.types import Actor, RequestUser, User


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


class ProjectSlugTaken(ValidationError):
    """`project_create` found the slug taken (by an earlier or a concurrent create)."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(f"a project with the slug {slug!r} exists", code="slug_taken")


PROJECT_OPTIONS = frozenset(
    {
        "description",
        "lease_seconds",
        "agreement_threshold",
        "honeypot_rate",
        "honeypot_window",
        "honeypot_threshold",
        "max_chars_per_second",
        "adjudication_rating_spread",
        "queue_on_import",
    }
)


def _project_input_clean(
    *,
    slug: str,
    task_type: str,
    languages: list[str],
    schema: dict[str, Any] | None,
    overlap: int | None,
    options: dict[str, Any],
) -> tuple[dict[str, Any], list[Language]]:
    """The checks both write paths share; returns (clean schema, language rows)."""
    if not slug or slugify(slug) != slug:
        raise ValidationError(
            {"slug": [f"slug {slug!r} must be lowercase letters, digits and hyphens"]}
        )
    if task_type not in TaskType.values:
        raise ValidationError(
            f"unknown task type {task_type!r}; use one of {', '.join(TaskType.values)}"
        )
    if not languages:
        raise ValidationError("a project needs at least one language")
    clean_schema = schema_validate(task_type=task_type, schema=schema)
    if overlap is not None and not 1 <= overlap <= 50:
        raise ValidationError("overlap must be between 1 and 50 judgments per item")
    unknown = set(options) - PROJECT_OPTIONS
    if unknown:
        raise ValidationError(f"unknown project options: {', '.join(sorted(unknown))}")
    if "honeypot_rate" in options and not 0 <= options["honeypot_rate"] <= 1:
        raise ValidationError("honeypot_rate must be between 0 and 1")
    if "lease_seconds" in options and options["lease_seconds"] < 10:
        raise ValidationError("lease_seconds must be at least 10")
    # Outside the caller's transaction: a language row is committed at once, so racing
    # creates of one new language wait on each other only for that insert.
    return clean_schema, [language_get_or_create(tag=tag) for tag in languages]


def project_create(
    *,
    slug: str,
    task_type: str,
    languages: list[str],
    lead: User,
    name: str | None = None,
    schema: dict[str, Any] | None = None,
    overlap: int | None = None,
    actor: Actor = None,
    token: ApiToken | None = None,
    **options: Any,
) -> Project:
    """Create a new project led by `lead`; never touches an existing one.

    The slug's uniqueness is decided by the database: the INSERT comes first in the block
    and a duplicate raises `ProjectSlugTaken`, whether the other project was made long ago
    or by a request racing this one ("exists? then create" would let both pass the check,
    and the old create-or-update made the later caller a lead of the earlier one's
    project). Nothing is written when it is refused.
    """
    clean_schema, language_objs = _project_input_clean(
        slug=slug,
        task_type=task_type,
        languages=languages,
        schema=schema,
        overlap=overlap,
        options=options,
    )
    project = Project(
        slug=slug,
        task_type=task_type,
        name=name or slug.replace("-", " ").title(),
        schema=clean_schema,
    )
    if overlap is not None:
        project.overlap = overlap
    for key, value in options.items():
        setattr(project, key, value)
    # The slug's uniqueness is left to the INSERT below (a check here would be a race).
    project.full_clean(exclude=["languages", "leads"], validate_unique=False)
    with transaction.atomic():
        try:
            project.save(force_insert=True)
        except IntegrityError:
            # Every other rule was checked above, so the one a valid row can break is the
            # slug's uniqueness (the row the other writer committed, or is committing: the
            # INSERT waits for that transaction and fails only if it commits). Leaving the
            # block by the exception rolls back to before the INSERT; nothing else ran.
            raise ProjectSlugTaken(slug) from None
        project.languages.add(*language_objs)
        if lead is not None:
            project.leads.add(lead)
        audit_record(
            verb="project.create",
            actor=actor,
            token=token,
            project=project,
            obj=project,
            data={
                "languages": [lang.tag for lang in language_objs],
                "schema": clean_schema,
                "lead": getattr(lead, "username", None),
            },
        )
    return project


def project_create_or_update(
    *,
    slug: str,
    task_type: str,
    languages: list[str],
    name: str | None = None,
    schema: dict[str, Any] | None = None,
    overlap: int | None = None,
    actor: Actor = None,
    **options: Any,
) -> tuple[Project, bool]:
    """Create the project or update it; returns (project, created). The operator's path
    (`create_project`); the API creates only (`project_create`).

    Changing the task type of an existing project is refused: its judgments would no
    longer fit the schema.
    """
    clean_schema, language_objs = _project_input_clean(
        slug=slug,
        task_type=task_type,
        languages=languages,
        schema=schema,
        overlap=overlap,
        options=options,
    )
    with transaction.atomic():
        existing = Project.objects.select_for_update().filter(slug=slug).first()
        created = existing is None
        project = existing if existing is not None else Project(slug=slug, task_type=task_type)
        if project.task_type != task_type:
            raise ValidationError(
                f"project {slug} is a {project.task_type} project; its task type cannot change to {task_type}"
            )
        before = (project.schema, project.overlap, project.adjudication_rating_spread)
        project.name = name or project.name or slug.replace("-", " ").title()
        project.schema = clean_schema
        if overlap is not None:
            project.overlap = overlap
        for key, value in options.items():
            setattr(project, key, value)
        project.full_clean(exclude=["languages", "leads"])
        project.save()
        project.languages.add(*language_objs)
        if not created and before != (
            project.schema,
            project.overlap,
            project.adjudication_rating_spread,
        ):
            # The rule that settles and labels every item changed: every exported line may
            # have, so incremental pulls look at each item again.
            Item.objects.filter(project=project).update(label_version=F("label_version") + 1)
        audit_record(
            verb="project.create" if created else "project.update",
            actor=actor,
            project=project,
            obj=project,
            data={"languages": [lang.tag for lang in language_objs], "schema": clean_schema},
        )
    return project, created


def projects_for_user(*, user: User) -> QuerySet[Project]:
    """Projects a user works or leads."""
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(Q(leads=user) | Q(qualifications__evaluator=user)).distinct()


def project_is_lead(*, project: Project, user: RequestUser) -> bool:
    return bool(
        user.is_authenticated and (user.is_superuser or project.leads.filter(pk=user.pk).exists())
    )
