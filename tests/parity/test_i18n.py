"""Every interface language offered in the language menu has a complete catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase, TestCase
from django.utils import translation
from django.utils.translation import to_locale

# Strings from the evaluator's path and from the lead pages.
SAMPLES = (
    "Log in",
    "Queues",
    "Submit",
    "Skip this item",
    "Keyboard shortcuts",
    "Parity report",
    "Adjudication queue",
    "Gold items",
)


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
                entries = [
                    e
                    for e in _entries(path)
                    if "\nmsgid " in f"\n{e}" and 'msgid ""\nmsgstr ""\n"' not in e
                ]
                fuzzy = [e for e in entries if "#, fuzzy" in e]
                # An empty msgstr (or plural form) is one with no string lines after it.
                empty = [
                    e
                    for e in entries
                    if re.search(r'^msgstr(\[\d+\])? ""\n(?!")', e.rstrip() + "\n", re.M)
                ]
                self.assertEqual(
                    (len(fuzzy), len(empty)),
                    (0, 0),
                    f"{code}: fuzzy {fuzzy[:1]}, empty {empty[:1]}",
                )


class InterfaceLanguageTests(SimpleTestCase):
    def test_it_offers_at_least_twelve_languages_three_right_to_left(self):
        codes = [code for code, _name in settings.LANGUAGES]
        self.assertGreaterEqual(len(codes), 12)
        rtl = [code for code in codes if translation.get_language_info(code)["bidi"]]
        self.assertGreaterEqual(len(rtl), 3, rtl)
        for code in ("fa", "es", "fr", "pt-br", "ru", "ja", "id", "bn"):
            self.assertIn(code, codes)

    def test_it_names_languages_in_the_interface_language(self):
        from annotation.languages import language_display_name

        for interface, german in (
            ("en", "German"),
            ("ar", "الألمانية"),
            ("fa", "آلمانی"),
            ("ja", "ドイツ語"),
            ("ru", "немецкий"),
            ("bn", "জার্মান"),
        ):
            with self.subTest(interface=interface), translation.override(interface):
                self.assertEqual(language_display_name("de"), german)

    def test_service_messages_reach_people_in_their_language(self):
        from django.core.exceptions import ValidationError

        from annotation.schema import judgment_value_validate

        schema = {"scale": {"min": 1, "max": 5, "labels": {}}, "issues": []}
        for code, _name in settings.LANGUAGES:
            with self.subTest(language=code), translation.override(code):
                with self.assertRaises(ValidationError) as raised:
                    judgment_value_validate(task_type="rating", schema=schema, value={"score": 9})
                message = raised.exception.messages[0]
                self.assertIn("9", message)
                if code != "en":
                    self.assertNotIn("is outside the scale", message)


class LanguageMenuTests(TestCase):
    def test_it_names_each_interface_language_in_the_interface_language_and_its_own(self):
        self.client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ar"
        page = self.client.get("/accounts/login/").content.decode()
        self.assertIn(">الألمانية (Deutsch)</option>", page)
        self.assertIn(">الفارسية (فارسی)</option>", page)
        # The current language is named in its own words only.
        self.assertIn(" selected>العربيّة</option>", page)
