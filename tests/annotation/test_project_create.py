"""Creating projects over the API: the `projects` token scope, the create-only service and
the answers a pipeline relies on (201 / 409 naming the slug / 403 / 400). The race itself
is in tests/concurrency/test_project_create.py (PostgreSQL)."""

from __future__ import annotations

import io
import json
import re

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from annotation.models import ApiToken, AuditEvent, Project, TaskType
from annotation.projects import ProjectSlugTaken, project_create, project_create_or_update
from annotation.tokens import api_token_authenticate, api_token_create
from tests.annotation.api_support import ApiTestCase
from tests.base import ParityTestCase
from tests.factories import UserFactory

BODY = {"slug": "chat-sw", "task_type": "pairwise", "languages": ["sw", "de"], "overlap": 2}


class ProjectCreateServiceTests(ParityTestCase):
    def test_it_creates_a_project_led_by_the_lead_and_audits_it(self):
        project = project_create(
            slug="new-one",
            task_type=TaskType.RATING,
            languages=["de", "sw"],
            lead=self.lead,
            actor=self.lead,
            overlap=4,
            honeypot_rate=0.1,
        )
        project.refresh_from_db()
        self.assertEqual(
            (project.task_type, project.overlap, project.honeypot_rate), ("rating", 4, 0.1)
        )
        self.assertEqual(sorted(project.languages.values_list("tag", flat=True)), ["de", "sw"])
        self.assertEqual(list(project.leads.all()), [self.lead])
        self.assertTrue(
            AuditEvent.objects.filter(
                verb="project.create", project=project, actor=self.lead
            ).exists()
        )

    def test_a_taken_slug_is_refused_and_the_existing_project_is_untouched(self):
        before = Project.objects.filter(pk=self.project.pk).values()[0]
        with self.assertRaises(ProjectSlugTaken) as caught:
            project_create(
                slug=self.project.slug,
                task_type=TaskType.PAIRWISE,
                languages=["sw"],
                lead=self.outsider,
                name="Takeover",
                overlap=9,
            )
        self.assertEqual(caught.exception.slug, self.project.slug)
        self.assertEqual(Project.objects.filter(pk=self.project.pk).values()[0], before)
        self.assertEqual(list(self.project.leads.all()), [self.lead])
        self.assertNotIn("sw", self.project.languages.values_list("tag", flat=True))
        self.assertFalse(AuditEvent.objects.filter(verb__startswith="project.").exists())

    def test_bad_input_is_refused_before_anything_is_written(self):
        for kwargs, message in (
            ({"slug": "Bad Slug"}, "lowercase"),
            ({"task_type": "poll"}, "unknown task type"),
            ({"languages": []}, "at least one language"),
            ({"overlap": 0}, "overlap"),
            ({"lease_seconds": 1}, "lease_seconds"),
            ({"colour": "red"}, "unknown project options"),
        ):
            with self.subTest(kwargs=kwargs), self.assertRaisesMessage(Exception, message):
                project_create(
                    **{
                        "slug": "x",
                        "task_type": "rating",
                        "languages": ["de"],
                        "lead": self.lead,
                        **kwargs,
                    }
                )
        self.assertFalse(Project.objects.filter(slug__in=["x", "Bad Slug"]).exists())

    def test_the_operators_command_still_creates_or_updates(self):
        project, created = project_create_or_update(
            slug=self.project.slug, task_type=TaskType.RATING, languages=["de"], overlap=5
        )
        self.assertFalse(created)
        self.assertEqual(project.overlap, 5)


class ProjectsTokenTests(ParityTestCase):
    def test_a_projects_token_belongs_to_no_project_and_needs_its_user(self):
        token, raw = api_token_create(
            project=None, scope="projects", name="pipeline", actor=self.lead
        )
        self.assertEqual(
            (token.project, token.created_by, api_token_authenticate(raw=raw)),
            (None, self.lead, token),
        )
        with self.assertRaisesMessage(Exception, "belongs to no project"):
            api_token_create(project=self.project, scope="projects", actor=self.lead)
        with self.assertRaisesMessage(Exception, "needs the active user"):
            api_token_create(project=None, scope="projects")
        with self.assertRaisesMessage(Exception, "belongs to a project"):
            api_token_create(project=None, scope="export")
        self.assertEqual(ApiToken.objects.count(), 1)

    def test_the_database_refuses_a_token_of_the_wrong_kind(self):
        for project, scope in ((self.project, "projects"), (None, "import")):
            with self.subTest(scope=scope), self.assertRaises(IntegrityError), transaction.atomic():
                ApiToken.objects.create(
                    project=project, scope=scope, prefix="pty_x", key_hash=scope
                )

    def test_the_command_makes_a_projects_token_for_a_user(self):
        out, err = io.StringIO(), io.StringIO()
        call_command(
            "create_token",
            "--scope",
            "projects",
            "--user",
            "lead",
            "--name",
            "ci",
            "--json",
            stdout=out,
            stderr=err,
        )
        printed = json.loads(out.getvalue())
        self.assertEqual(
            (printed["project"], printed["scope"], printed["user"]), (None, "projects", "lead")
        )
        token = api_token_authenticate(raw=printed["token"])
        self.assertEqual((token.project, token.created_by), (None, self.lead))

    def test_the_command_refuses_a_projects_token_without_a_user_or_with_a_project(self):
        for args, message in (
            (["--scope", "projects"], "needs --user"),
            (["--scope", "projects", "--user", "nobody"], "no user"),
            (
                ["--scope", "projects", "--user", "lead", "--project", self.project.slug],
                "leave out --project",
            ),
            (
                ["--scope", "import", "--user", "lead", "--project", self.project.slug],
                "only for --scope projects",
            ),
            (["--scope", "import"], "needs --project"),
        ):
            with self.subTest(args=args), self.assertRaisesMessage(CommandError, message):
                call_command("create_token", *args, stdout=io.StringIO(), stderr=io.StringIO())
        self.assertFalse(ApiToken.objects.exists())

    def test_a_lead_is_not_offered_the_projects_scope_and_cannot_post_it(self):
        self.client.force_login(self.lead)
        url = f"/p/{self.project.slug}/tokens/"
        page = self.client.get(url).content.decode()
        self.assertEqual(
            sorted(re.findall(r'name="scope" value="([a-z]+)"', page)), ["export", "import", "read"]
        )
        response = self.client.post(url, {"scope": "projects", "name": "sneaky"})
        self.assertEqual(response.status_code, 400)
        self.assertFalse(ApiToken.objects.exists())


class ProjectCreateApiTests(ApiTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.owner = UserFactory(username="pipeline-owner")
        cls.projects_token = api_token_create(
            project=None, scope="projects", name="creator", actor=cls.owner
        )[1]

    def test_a_projects_token_creates_a_project_led_by_its_user(self):
        response = self.call("post", "/api/v1/projects/", body=BODY, token=self.projects_token)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["slug"], "chat-sw")
        project = Project.objects.get(slug="chat-sw")
        self.assertEqual((project.task_type, project.overlap), ("pairwise", 2))
        self.assertEqual(list(project.leads.all()), [self.owner])
        event = AuditEvent.objects.get(verb="project.create", project=project)
        self.assertEqual((event.actor, event.token.scope), (None, "projects"))
        # It lists the projects it created, and nothing else.
        listed = self.call("get", "/api/v1/projects/", token=self.projects_token).json()
        self.assertEqual([p["slug"] for p in listed], ["chat-sw"])

    def test_a_taken_slug_answers_409_naming_it_and_changes_nothing(self):
        before = Project.objects.filter(pk=self.project.pk).values()[0]
        body = {**BODY, "slug": self.project.slug, "name": "Takeover"}
        for token in (self.projects_token, None):
            if token is None:
                self.client.force_login(self.lead)
            errors = self.assertErrors(
                self.call("post", "/api/v1/projects/", body=body, token=token),
                409,
                field="slug",
                contains=f"'{self.project.slug}'",
            )
            self.assertEqual(len(errors), 1)
        self.assertEqual(Project.objects.filter(pk=self.project.pk).values()[0], before)
        self.assertEqual(list(self.project.leads.all()), [self.lead])
        self.assertFalse(AuditEvent.objects.filter(verb__startswith="project.").exists())

    def test_a_token_of_another_scope_gets_403_naming_the_scope_it_needs(self):
        for scope in ("import", "export", "read"):
            with self.subTest(scope=scope):
                self.assertErrors(
                    self.call("post", "/api/v1/projects/", body=BODY, token=self.tokens[scope]),
                    403,
                    contains="needs a token of the scope 'projects'",
                )
        self.assertFalse(Project.objects.filter(slug="chat-sw").exists())

    def test_a_token_whose_user_is_gone_or_inactive_gets_403(self):
        gone = UserFactory(username="leaver")
        raw = api_token_create(project=None, scope="projects", actor=gone)[1]
        gone.is_active = False
        gone.save()
        self.assertErrors(
            self.call("post", "/api/v1/projects/", body=BODY, token=raw), 403, contains="inactive"
        )
        gone.delete()
        self.assertErrors(
            self.call("post", "/api/v1/projects/", body=BODY, token=raw), 403, contains="gone"
        )
        self.assertFalse(Project.objects.filter(slug="chat-sw").exists())

    def test_a_bad_body_answers_400_with_the_field(self):
        for body, field in (
            ({**BODY, "slug": "Not A Slug"}, "slug"),
            ({**BODY, "slug": "Upper_Case"}, "slug"),  # a slug to DRF, not to Parity
            ({**BODY, "task_type": "poll"}, "task_type"),
            ({**BODY, "languages": []}, "languages"),
            ({**BODY, "overlap": 0}, "overlap"),
            ({key: value for key, value in BODY.items() if key != "slug"}, "slug"),
        ):
            with self.subTest(body=body):
                self.assertErrors(
                    self.call("post", "/api/v1/projects/", body=body, token=self.projects_token),
                    400,
                    field=field,
                )
        self.assertErrors(
            self.call("post", "/api/v1/projects/", body="{not json", token=self.projects_token), 400
        )
        self.assertErrors(
            self.call(
                "post",
                "/api/v1/projects/",
                body={**BODY, "languages": ["??"]},
                token=self.projects_token,
            ),
            400,
            contains="not a valid BCP 47",
        )
        self.assertFalse(Project.objects.filter(slug__in=["chat-sw", "Not A Slug"]).exists())

    def test_a_projects_token_reaches_no_project_endpoint(self):
        self.assertErrors(self.call("get", self.url("items/"), token=self.projects_token), 404)
        self.assertErrors(
            self.call("get", self.url("export/preferences/"), token=self.projects_token), 404
        )
