from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project, TokenScope
from annotation.tokens import api_token_create, lifetime_parse
from annotation.types import User


class Command(BaseCommand):
    help = (
        "Create an API token; it is printed once and never stored. A project's token: --project SLUG "
        "--scope import|export|read. A token that creates projects (operators only): --scope projects "
        "--user NAME; the projects it creates are led by that user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="project slug (every scope but projects)")
        parser.add_argument(
            "--scope",
            required=True,
            choices=TokenScope.values,
            help="import (items, judgments, reports), export (exports), read (lists, reports), "
            "projects (POST /api/v1/projects/; no --project, needs --user)",
        )
        parser.add_argument(
            "--user",
            help="with --scope projects: the username the token acts for; it leads "
            "the projects the token creates",
        )
        parser.add_argument(
            "--name", default="", help="what the token is for, e.g. the pipeline's name"
        )
        parser.add_argument(
            "--expires-in",
            default="",
            metavar="LIFETIME",
            help="refuse the token after this long: 30d (days) or 12h (hours); default: never",
        )
        parser.add_argument(
            "--json", action="store_true", help="print the token and its id as JSON"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        project, actor = _project_and_user(opts)
        try:
            expires_in = lifetime_parse(opts["expires_in"]) if opts["expires_in"] else None
            token, raw = api_token_create(
                project=project,
                scope=opts["scope"],
                name=opts["name"],
                actor=actor,
                expires_in=expires_in,
            )
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None
        where = project.slug if project is not None else None
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": token.pk,
                        "project": where,
                        "scope": token.scope,
                        **({"user": actor.get_username()} if actor is not None else {}),
                        "token": raw,
                        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                    }
                )
            )
            return
        self.stdout.write(raw)
        target = (
            f"for {where}"
            if where or actor is None
            else f"creating projects led by {actor.get_username()}"
        )
        self.stderr.write(
            f"Token {token.prefix}… {target} (scope {token.scope}"
            + (f", expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "")
            + "). It is shown only now; "
            "send it as: Authorization: Bearer <token>"
        )


def _project_and_user(opts: dict[str, Any]) -> tuple[Project | None, User | None]:
    """The token's project, or for the scope projects the user it acts for (who will lead
    the projects it creates); refused with the reason when the options do not fit."""
    if opts["scope"] == TokenScope.PROJECTS:
        if opts["project"]:
            raise CommandError(
                "a token of the scope projects belongs to no project; leave out --project"
            )
        if not opts["user"]:
            raise CommandError(
                "--scope projects needs --user NAME: the user who will lead the projects "
                "the token creates"
            )
        actor = get_user_model().objects.filter(username=opts["user"]).first()
        if actor is None:
            raise CommandError(f"no user with username {opts['user']!r}")
        return None, actor
    if opts["user"]:
        raise CommandError("--user is only for --scope projects")
    if not opts["project"]:
        raise CommandError(f"--scope {opts['scope']} needs --project SLUG")
    project = Project.objects.filter(slug=opts["project"]).first()
    if project is None:
        raise CommandError(f"no project with slug {opts['project']!r}")
    return project, None
