from __future__ import annotations

import json
import re
import tempfile
from io import StringIO
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

from annotation.languages import language_get_or_create, language_tag_normalize
from annotation.models import Project
from annotation.projects import project_create_or_update
from annotation.schema import schema_validate


class LanguageTests(TestCase):
    def test_it_normalises_tags_and_derives_script_and_direction(self):
        self.assertEqual(language_tag_normalize("zh-hans"), "zh-Hans")
        for tag, script, direction in [
            ("ar", "Arab", "rtl"),
            ("he", "Hebr", "rtl"),
            ("ur", "Arab", "rtl"),
            ("am", "Ethi", "ltr"),
            ("th", "Thai", "ltr"),
            ("sw", "Latn", "ltr"),
        ]:
            lang = language_get_or_create(tag=tag)
            self.assertEqual((lang.script, lang.direction), (script, direction), tag)

    def test_it_refuses_invalid_tags(self):
        for bad in ["", "xx-!!", "english", "123"]:
            with self.subTest(bad=bad), self.assertRaises(ValidationError):
                language_tag_normalize(bad)


class SchemaTests(TestCase):
    def test_it_refuses_bad_schemas_with_the_reason(self):
        cases = [
            ("rating", {"scale": {"min": 5, "max": 1}}, "min must be below"),
            ("rating", {}, "needs schema.scale"),
            ("labels", {"labels": ["ok", "ok"]}, "duplicates"),
            ("labels", {"labels": ["only"]}, "at least two labels"),
            ("pairwise", {"labels": ["a", "b"]}, "does not apply to a pairwise project"),
            ("rating", {"scale": {"min": 1, "max": 5}, "level": "fuzzy"}, "schema.level"),
            ("rating", {"scale": {"min": 1, "max": 5}, "colour": 1}, "unknown keys: colour"),
        ]
        for task_type, schema, message in cases:
            with self.subTest(schema=schema), self.assertRaisesMessage(ValidationError, message):
                schema_validate(task_type=task_type, schema=schema)


class CreateProjectTests(TestCase):
    def test_its_help_points_at_readme_sections_that_exist_and_names_the_default_scale(self):
        from django.core.management import get_commands, load_command_class

        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
        headings = {
            line.lstrip("#").strip() for line in readme.splitlines() if line.startswith("#")
        }
        for name, app in get_commands().items():
            if app != "annotation":
                continue
            text = load_command_class(app, name).create_parser("manage.py", name).format_help()
            self.assertNotIn("DESIGN.md", text, name)  # the project ships no DESIGN.md
            for section in re.findall(r"README\.md, '([^']+)'", " ".join(text.split())):
                self.assertIn(section, headings, name)
        text = " ".join(
            load_command_class("annotation", "create_project")
            .create_parser("manage.py", "create_project")
            .format_help()
            .split()
        )
        self.assertIn("a rating project uses a 1–5 scale", text)
        scale = schema_validate(task_type="rating", schema=None)["scale"]
        self.assertEqual((scale["min"], scale["max"]), (1, 5))

    def test_it_creates_then_updates_a_project(self):
        out = StringIO()
        call_command(
            "create_project",
            "--slug",
            "sw-chat",
            "--task-type",
            "pairwise",
            "--languages",
            "sw,am",
            stdout=out,
        )
        self.assertIn("created project sw-chat", out.getvalue())
        project = Project.objects.get(slug="sw-chat")
        self.assertEqual(sorted(project.languages.values_list("tag", flat=True)), ["am", "sw"])
        schema = Path(tempfile.mkdtemp()) / "schema.json"
        schema.write_text(json.dumps({"issues": ["unsafe", "code_switching"]}))
        call_command(
            "create_project",
            "--slug",
            "sw-chat",
            "--task-type",
            "pairwise",
            "--languages",
            "sw,am,yo",
            "--schema",
            str(schema),
            "--overlap",
            "5",
            stdout=StringIO(),
        )
        project.refresh_from_db()
        self.assertEqual(
            (project.overlap, project.schema["issues"]), (5, ["unsafe", "code_switching"])
        )
        self.assertEqual(project.languages.count(), 3)

    def test_it_refuses_bad_arguments_and_changes_nothing(self):
        with self.assertRaisesMessage(CommandError, "not a valid BCP 47 language tag"):
            call_command(
                "create_project", "--slug", "p", "--task-type", "rating", "--languages", "de,??"
            )
        with self.assertRaisesMessage(CommandError, "lowercase letters"):
            call_command(
                "create_project", "--slug", "Bad Slug", "--task-type", "rating", "--languages", "de"
            )
        with self.assertRaisesMessage(CommandError, "overlap must be between"):
            call_command(
                "create_project",
                "--slug",
                "p",
                "--task-type",
                "rating",
                "--languages",
                "de",
                "--overlap",
                "0",
            )
        with self.assertRaisesMessage(CommandError, "does not exist"):
            call_command(
                "create_project",
                "--slug",
                "p",
                "--task-type",
                "rating",
                "--languages",
                "de",
                "--schema",
                "/nope.json",
            )
        self.assertFalse(Project.objects.exists())
        project_create_or_update(slug="p", task_type="rating", languages=["de"])
        with self.assertRaisesMessage(ValidationError, "cannot change to labels"):
            project_create_or_update(slug="p", task_type="labels", languages=["de"])
