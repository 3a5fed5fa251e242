"""Creating one project from many callers at once, through the real request stack
(middleware, authentication, DRF, the error handler), on PostgreSQL.

Each caller is a thread with its own test client and its own database connection; a
barrier releases all the POSTs together. What is asserted is the invariant a pipeline
relies on, never timings: exactly one 201, every other answer a 409 in the JSON error
shape naming the slug, no 500, and the project led by the one caller who created it
(no later caller overwrote it or became its lead).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connections
from django.test import Client, TransactionTestCase

from annotation.models import AuditEvent, Project, TaskType
from annotation.tokens import api_token_create
from tests.factories import ProjectFactory, UserFactory

CALLERS = 8
ROUNDS = 3


def _post_all(
    clients: list[tuple[Client, dict[str, str]]], body: dict[str, Any]
) -> list[tuple[int, Any]]:
    """POST `body` from every client at once; returns (status, parsed body) per client."""
    barrier = threading.Barrier(len(clients))
    answers: list[tuple[int, Any]] = [(0, None)] * len(clients)

    def run(index: int, client: Client, headers: dict[str, str]) -> None:
        try:
            barrier.wait(timeout=30)
            response = client.post(
                "/api/v1/projects/",
                data=json.dumps(body),
                content_type="application/json",
                **headers,
            )
            try:
                parsed = response.json()
            except ValueError:
                parsed = response.content[:300]
            answers[index] = (response.status_code, parsed)
        except Exception as exc:  # reported by the test, never swallowed
            answers[index] = (-1, f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c, h)) for i, (c, h) in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request thread hung"
    return answers


@pytest.mark.postgres
class ProjectCreateConcurrencyTests(TransactionTestCase):
    def setUp(self) -> None:
        cache.clear()
        home = ProjectFactory(slug="home", task_type=TaskType.RATING, languages=["de"])
        # Leads of another project may create projects with a session.
        self.leads = [UserFactory(username=f"lead{i}") for i in range(CALLERS)]
        home.leads.add(*self.leads)

    def _session_clients(self, users: list[Any]) -> list[tuple[Client, dict[str, str]]]:
        clients = []
        for user in users:
            client = Client(raise_request_exception=False)
            client.force_login(user)
            clients.append((client, {}))
        return clients

    def _assert_one_created(self, answers: list[tuple[int, Any]], *, slug: str) -> int:
        """Exactly one 201 and the rest 409 naming the slug; returns the winner's index."""
        codes = sorted(code for code, _body in answers)
        self.assertEqual(codes, [201] + [409] * (len(answers) - 1), answers)
        for code, body in answers:
            if code == 409:
                self.assertEqual(set(body), {"errors"}, body)
                self.assertEqual(body["errors"][0].get("field"), "slug", body)
                self.assertIn(slug, body["errors"][0]["message"])
        winner = next(i for i, (code, _body) in enumerate(answers) if code == 201)
        self.assertEqual(answers[winner][1]["slug"], slug)
        self.assertEqual(Project.objects.filter(slug=slug).count(), 1)
        self.assertEqual(
            AuditEvent.objects.filter(verb="project.create", project__slug=slug).count(), 1
        )
        self.assertFalse(
            AuditEvent.objects.filter(verb="project.update").exists(),
            "a later caller updated the project",
        )
        return winner

    def test_it_answers_one_201_and_409s_to_sessions_creating_one_slug_at_once(self):
        for round_ in range(ROUNDS):
            slug = f"race-{round_}"
            # A language no one has used yet: its row is created by the racing requests too.
            body = {
                "slug": slug,
                "task_type": "pairwise",
                "languages": ["de", ("sw", "yo", "ha")[round_]],
                "name": f"Race {round_}",
            }
            answers = _post_all(self._session_clients(self.leads), body)
            winner = self._assert_one_created(answers, slug=slug)
            project = Project.objects.get(slug=slug)
            # The creator leads it, and nobody else became its lead.
            self.assertEqual(
                list(project.leads.values_list("pk", flat=True)), [self.leads[winner].pk]
            )
            self.assertEqual(project.task_type, TaskType.PAIRWISE)

    def test_it_answers_one_201_and_409s_to_tokens_and_sessions_mixed(self):
        owners = [UserFactory(username=f"pipeline{i}") for i in range(CALLERS // 2)]
        tokens = [
            api_token_create(project=None, scope="projects", name=f"p{i}", actor=owner)[1]
            for i, owner in enumerate(owners)
        ]
        clients = self._session_clients(self.leads[: CALLERS // 2]) + [
            (Client(raise_request_exception=False), {"HTTP_AUTHORIZATION": f"Bearer {raw}"})
            for raw in tokens
        ]
        expected_leads = self.leads[: CALLERS // 2] + owners
        for round_ in range(ROUNDS):
            slug = f"mixed-{round_}"
            answers = _post_all(clients, {"slug": slug, "task_type": "rating", "languages": ["de"]})
            winner = self._assert_one_created(answers, slug=slug)
            project = Project.objects.get(slug=slug)
            self.assertEqual(
                list(project.leads.values_list("pk", flat=True)), [expected_leads[winner].pk]
            )
