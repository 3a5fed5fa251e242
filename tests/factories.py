"""factory_boy factories for the whole suite."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from annotation.languages import language_get_or_create
from annotation.models import Item, Project, TaskType
from annotation.schema import schema_validate


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.django.Password("pw-for-tests-1")


def language(tag: str):
    return language_get_or_create(tag=tag)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    task_type = TaskType.RATING
    schema = factory.LazyAttribute(lambda o: schema_validate(task_type=o.task_type, schema=None))
    overlap = 3

    @factory.post_generation
    def languages(self, create, extracted, **kwargs):
        if create:
            for tag in extracted or ["de"]:
                self.languages.add(language(tag))


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = factory.SubFactory(ProjectFactory)
    language = factory.LazyFunction(lambda: language("de"))
    external_id = factory.Sequence(lambda n: f"item-{n}")
    prompt = "Translate: The cat sits on the mat."
    response = factory.LazyAttribute(
        lambda o: (
            "" if o.project.task_type == TaskType.PAIRWISE else "Die Katze sitzt auf der Matte."
        )
    )
    response_a = factory.LazyAttribute(
        lambda o: (
            "Die Katze sitzt auf der Matte." if o.project.task_type == TaskType.PAIRWISE else ""
        )
    )
    response_b = factory.LazyAttribute(
        lambda o: "Katze sitzen Matte." if o.project.task_type == TaskType.PAIRWISE else ""
    )
    open_slots = factory.LazyAttribute(lambda o: 0 if o.is_gold else o.project.overlap)
    is_gold = False
    content_hash = factory.Sequence(lambda n: f"{n:064x}")
