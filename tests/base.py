"""The cast every test starts with: a lead, two evaluators with different languages, an outsider."""

from __future__ import annotations

from django.test import TestCase

from annotation.models import TaskType
from annotation.qualification import evaluator_language_add, qualification_grant
from tests.factories import ProjectFactory, UserFactory, language


class ParityTestCase(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        cls.de = language("de")
        cls.ar = language("ar")
        cls.zh = language("zh")
        cls.lead = UserFactory(username="lead")
        cls.alice = UserFactory(username="alice")  # German evaluator
        cls.bashir = UserFactory(username="bashir")  # Arabic evaluator
        cls.outsider = UserFactory(username="outsider")
        cls.project = ProjectFactory(
            slug="mt-rating", task_type=TaskType.RATING, languages=["de", "ar", "zh"]
        )
        cls.project.leads.add(cls.lead)
        evaluator_language_add(user=cls.alice, language=cls.de)
        evaluator_language_add(user=cls.bashir, language=cls.ar)
        qualification_grant(
            project=cls.project, evaluator=cls.alice, language=cls.de, actor=cls.lead
        )
        qualification_grant(
            project=cls.project, evaluator=cls.bashir, language=cls.ar, actor=cls.lead
        )
