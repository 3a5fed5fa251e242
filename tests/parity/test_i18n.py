"""Every interface language offered in the language menu has a complete catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase
from django.utils import translation
from django.utils.translation import to_locale

# Strings from the evaluator's path and from the lead pages.
SAMPLES = ("Log in", "Queues", "Submit", "Skip this item", "Keyboard shortcuts", "Parity report",
           "Adjudication queue", "Gold items")


def _entries(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n\n")


class CatalogueTests(SimpleTestCase):
    def test_every_offered_language_translates_the_interface(self):
        for code, _name in settings.LANGUAGES:
            if code == "en":
                continue
            with self.subTest(language=code), translation.override(code):
                untranslated = [s for s in SAMPLES if translation.gettext(s) == s]
                self.assertEqual(untranslated, [], f"{code} shows these in English")

    def test_no_catalogue_has_empty_or_fuzzy_entries(self):
        for code, _name in settings.LANGUAGES:
            if code == "en":
                continue
            path = Path(settings.LOCALE_PATHS[0]) / to_locale(code) / "LC_MESSAGES" / "django.po"
            with self.subTest(language=code):
                self.assertTrue(path.is_file(), f"{path} is missing")
                entries = [e for e in _entries(path) if "\nmsgid " in f"\n{e}" and 'msgid ""\nmsgstr ""\n"' not in e]
                fuzzy = [e for e in entries if "#, fuzzy" in e]
                # An empty msgstr (or plural form) is one with no string lines after it.
                empty = [e for e in entries if re.search(r'^msgstr(\[\d+\])? ""\n(?!")', e.rstrip() + "\n", re.M)]
                self.assertEqual((len(fuzzy), len(empty)), (0, 0), f"{code}: fuzzy {fuzzy[:1]}, empty {empty[:1]}")
