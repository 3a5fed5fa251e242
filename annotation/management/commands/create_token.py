from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project, TokenScope
from annotation.tokens import api_token_create, lifetime_parse


class Command(BaseCommand):
    help = "Create an API token for one project and scope; the token is printed once and never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--scope", required=True, choices=TokenScope.values,
                            help="import (items, judgments, reports), export (exports), read (lists, reports)")
        parser.add_argument("--name", default="", help="what the token is for, e.g. the pipeline's name")
        parser.add_argument("--expires-in", default="", metavar="LIFETIME",
                            help="refuse the token after this long: 30d (days) or 12h (hours); default: never")
        parser.add_argument("--json", action="store_true", help="print the token and its id as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        try:
            expires_in = lifetime_parse(opts["expires_in"]) if opts["expires_in"] else None
            token, raw = api_token_create(project=project, scope=opts["scope"], name=opts["name"],
                                          expires_in=expires_in)
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None
        if opts["json"]:
            self.stdout.write(json.dumps({"id": token.pk, "project": project.slug, "scope": token.scope,
                                          "token": raw,
                                          "expires_at": token.expires_at.isoformat() if token.expires_at else None}))
            return
        self.stdout.write(raw)
        self.stderr.write(
            f"Token {token.prefix}… for {project.slug} (scope {token.scope}"
            + (f", expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "")
            + "). It is shown only now; "
            "send it as: Authorization: Bearer <token>"
        )
