"""Who counts as having acted: one rule (`actor_user`) for the audit log and every
"created by", "changed by" and "published by" field."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from annotation.audit import actor_user, audit_record
from annotation.models import AuditEvent
from tests.base import ParityTestCase


class ActorTests(ParityTestCase):
    def test_it_records_a_signed_in_user_and_nobody_else(self):
        self.assertEqual(actor_user(self.lead), self.lead)
        self.assertIsNone(actor_user(AnonymousUser()))
        self.assertIsNone(actor_user(None))

    def test_an_anonymous_visitor_leaves_an_event_without_an_actor(self):
        audit_record(verb="test.anonymous", actor=AnonymousUser(), project=self.project)
        audit_record(verb="test.lead", actor=self.lead, project=self.project)
        self.assertEqual(
            dict(AuditEvent.objects.filter(verb__startswith="test.").values_list("verb", "actor")),
            {"test.anonymous": None, "test.lead": self.lead.pk},
        )
