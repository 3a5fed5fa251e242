"""One way to clean text: the rule itself, and the callers that used to clean it their own way."""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.test import SimpleTestCase

from annotation.adjudication import adjudication_decide
from annotation.gold import gold_create
from annotation.imports import ImportRejected, items_import
from annotation.models import ItemStatus
from annotation.schema import judgment_value_validate
from annotation.validation import TextInvalid, text_clean
from guidelines.services import guideline_publish
from tests.base import ParityTestCase
from tests.factories import ItemFactory

# "é" as e + combining acute (NFD, as some keyboards and macOS file names give it) and as one code point.
DECOMPOSED = "Cafe\u0301 ist zu ho\u0308flich."
COMPOSED = unicodedata.normalize("NFC", DECOMPOSED)


class TextCleanTests(SimpleTestCase):
    def test_it_normalises_to_nfc_and_strips_typed_text(self):
        self.assertNotEqual(DECOMPOSED, COMPOSED)
        self.assertEqual(text_clean(f"  {DECOMPOSED}\r\n", field="note", max_chars=100), COMPOSED)
        self.assertEqual(text_clean("a\r\nb", field="note", max_chars=100), "a\nb")

    def test_it_keeps_imported_whitespace(self):
        self.assertEqual(
            text_clean(f"  {DECOMPOSED}\r\n", field="response", max_chars=100, strip=False),
            f"  {COMPOSED}\r\n",
        )

    def test_it_refuses_bad_text_naming_the_field_and_the_rule(self):
        cases = {
            "required": ("   ", "note: is required"),
            "type": (12, "note: must be a string"),
            "nul": ("a\x00b", "note: contains a NUL character"),
            "surrogate": ("a\ud800", "note: contains a lone surrogate"),
            "length": ("x" * 11, "note: is longer than 10 characters"),
        }
        for code, (value, message) in cases.items():
            with self.subTest(code=code), self.assertRaises(TextInvalid) as caught:
                text_clean(value, field="note", max_chars=10, required=True)
            self.assertEqual((caught.exception.code, caught.exception.field), (code, "note"))
            self.assertIn(message, caught.exception.messages[0])

    def test_it_measures_the_length_after_cleaning(self):
        # Ten characters once composed, fifteen as typed with combining marks.
        self.assertEqual(len(text_clean("e\u0301" * 5 + "abcde", field="note", max_chars=10)), 10)
        self.assertEqual(text_clean(None, field="note", max_chars=10), "")


class CommentAndReasonTests(ParityTestCase):
    def test_a_judgment_comment_is_nfc_like_every_other_text(self):
        clean = judgment_value_validate(
            task_type="rating",
            schema=self.project.schema,
            value={"score": 3, "comment": f" {DECOMPOSED} "},
        )
        self.assertEqual(clean["comment"], COMPOSED)
        with self.assertRaisesMessage(ValidationError, "comment: must be a string"):
            judgment_value_validate(
                task_type="rating", schema=self.project.schema, value={"score": 3, "comment": 3}
            )
        with self.assertRaisesMessage(ValidationError, "comment: contains a NUL character"):
            judgment_value_validate(
                task_type="rating",
                schema=self.project.schema,
                value={"score": 3, "comment": "a\x00"},
            )

    def test_an_adjudication_reason_is_nfc_and_keeps_its_messages(self):
        item = ItemFactory(
            project=self.project, language=self.de, status=ItemStatus.ADJUDICATION, open_slots=0
        )
        with self.assertRaisesMessage(ValidationError, "reason: say why this is the final label."):
            adjudication_decide(item=item, user=self.lead, value={"score": 2}, reason=None)
        with self.assertRaisesMessage(ValidationError, "reason: at most 5000 characters of text."):
            adjudication_decide(item=item, user=self.lead, value={"score": 2}, reason="a\x00")
        final = adjudication_decide(
            item=item, user=self.lead, value={"score": 2}, reason=DECOMPOSED
        )
        self.assertEqual(final.reason, COMPOSED)

    def test_gold_and_guideline_text_use_the_same_rule(self):
        gold = gold_create(
            project=self.project,
            external_id="g1",
            language="de",
            value={"score": 4},
            explanation=f"{DECOMPOSED}\r\n",
            response="Antwort",
        )
        self.assertEqual(gold.explanation, COMPOSED)
        with self.assertRaisesMessage(ValidationError, "explanation: contains a NUL character"):
            gold_create(
                project=self.project,
                external_id="g2",
                language="de",
                value={"score": 4},
                explanation="a\x00",
                response="Antwort",
            )
        version = guideline_publish(
            project=self.project, body=f"# {DECOMPOSED}\r\n", changelog="", actor=self.lead
        )
        self.assertEqual(version.body, f"# {COMPOSED}")

    def test_an_imported_gold_explanation_is_cleaned_like_a_typed_one(self):
        items_import(
            project=self.project,
            records=[
                (
                    1,
                    {
                        "external_id": "g3",
                        "language": "de",
                        "response": "Antwort",
                        "gold": {"value": {"score": 4}, "explanation": f"  {DECOMPOSED}\n"},
                    },
                )
            ],
        )
        self.assertEqual(self.project.items.get(external_id="g3").gold.explanation, COMPOSED)
        with self.assertRaises(ImportRejected) as caught:
            items_import(
                project=self.project,
                records=[(1, {"external_id": 5, "language": "de", "response": "x"})],
            )
        self.assertEqual(
            (caught.exception.errors[0].field, caught.exception.errors[0].message),
            ("external_id", "must be a string"),
        )
