"""The bundled real data, read through annotation/demo_data.py, as import lines Parity accepts."""

from __future__ import annotations

import itertools
import statistics

from django.test import SimpleTestCase

from annotation import demo_data
from annotation.imports import items_import
from annotation.languages import language_get_or_create
from annotation.models import Item, Judgment, TaskType
from annotation.projects import project_create_or_update
from tests.base import ParityTestCase


class MlqeDataTests(SimpleTestCase):
    def test_it_has_all_segments_of_every_pair(self) -> None:
        for pair in demo_data.MLQE_PAIRS:
            segments = list(demo_data.mlqe_segments(pair))
            self.assertEqual(len(segments), 1000, pair)
            self.assertEqual(len({s["index"] for s in segments}), 1000, pair)
            for seg in segments:
                self.assertTrue(seg["original"].strip() and seg["translation"].strip())
                self.assertIn(len(seg["scores"]), (3, 6))
                self.assertTrue(all(isinstance(s, int) and 0 <= s <= 100 for s in seg["scores"]))
                self.assertAlmostEqual(seg["mean"], statistics.mean(seg["scores"]), places=3)

    def test_it_aligns_tokens_and_logprobs(self) -> None:
        for pair in demo_data.MLQE_PAIRS:
            for seg in demo_data.mlqe_segments(pair):
                self.assertEqual(
                    len(seg["tokens"]), len(seg["token_logprobs"]), f"{pair} #{seg['index']}"
                )
                self.assertEqual(seg["tokens"][-1], "</s>")
                self.assertTrue(all(v <= 0 for v in seg["token_logprobs"]))
                if pair in ("ne-en", "si-en"):
                    continue  # their model_score is on another scale (data/README.md, known quirks)
                # model_score is the model's mean token log-probability over the same positions.
                mean = statistics.mean(seg["token_logprobs"])
                self.assertAlmostEqual(
                    seg["model_score"], mean, delta=0.001, msg=f"{pair} #{seg['index']}"
                )

    def test_it_reviews_the_target_language(self) -> None:
        first = {pair: next(demo_data.mlqe_items(pair, limit=1)) for pair in demo_data.MLQE_PAIRS}
        self.assertEqual(first["en-de"]["language"], "de")
        self.assertEqual(first["en-zh"]["language"], "zh")
        self.assertEqual(first["si-en"]["language"], "en")
        self.assertEqual(first["si-en"]["metadata"]["source_language"], "si")
        self.assertEqual(first["ru-en"]["external_id"], "mlqe-ru-en-1382")
        self.assertEqual(first["en-de"]["model"], "mlqe-pe-nmt-en-de")
        self.assertEqual(first["en-de"]["metadata"]["licence"], "CC0-1.0")

    def test_it_gives_one_historical_judgment_per_rater_score(self) -> None:
        segments = list(itertools.islice(demo_data.mlqe_segments("ru-en"), 2))
        lines = list(demo_data.mlqe_judgments("ru-en", limit=2))
        self.assertEqual(len(lines), 6)  # three raters for ru-en
        self.assertEqual(
            lines[0],
            {
                "item_external_id": f"mlqe-ru-en-{segments[0]['index']}",
                "rater": "mlqe-ru-en-r1",
                "value": {"score": segments[0]["scores"][0]},
            },
        )
        self.assertEqual([line["value"]["score"] for line in lines[3:]], segments[1]["scores"])

    def test_it_refuses_an_unknown_pair_or_limit(self) -> None:
        with self.assertRaisesMessage(ValueError, "unknown MLQE-PE pair 'de-en'"):
            list(demo_data.mlqe_items("de-en"))
        with self.assertRaisesMessage(ValueError, "limit must be a whole number"):
            list(demo_data.mlqe_items("en-de", limit=-1))


class WmtDataTests(SimpleTestCase):
    def test_it_scores_each_rater_by_the_mqm_rule(self) -> None:
        # zh-en segment 2, from the original TSV (HOTW-test rows are attention checks):
        #   HW-TSC     rater2 No-error                                  -> 0
        #              rater4 Style/Unnatural Minor + Terminology Minor -> 2
        #              rater7 No-error                                  -> 0
        #   GPT4-5shot rater2 Fluency/Punctuation Minor + Style Minor   -> 1.1
        #              rater4 Style Minor (+ a HOTW-test "Found" row)   -> 1
        #              rater7 Addition Minor + Mistranslation Major + Mistranslation Minor -> 7
        lines = [
            line
            for line in demo_data.wmt_judgments("zh-en", limit=10)
            if line["item_external_id"] == "wmt23-zh-en-2-HW-TSC-vs-GPT4-5shot"
        ]
        self.assertEqual(
            {line["rater"]: line["value"] for line in lines},
            {
                "wmt23-zh-en-rater2": {"choice": "a", "strength": 1},  # 0 vs 1.1
                "wmt23-zh-en-rater4": {"choice": "b", "strength": 1},  # 2 vs 1
                "wmt23-zh-en-rater7": {"choice": "a", "strength": 2},  # 0 vs 7: a gap of 5 or more
            },
        )
        self.assertTrue(all(line["created"].endswith("Z") for line in lines))

    def test_it_ties_equal_penalties_and_grades_the_gap(self) -> None:
        self.assertEqual(demo_data.wmt_choice(penalty_a=2.0, penalty_b=2.0), {"choice": "tie"})
        self.assertEqual(
            demo_data.wmt_choice(penalty_a=0.1, penalty_b=0.0), {"choice": "b", "strength": 1}
        )
        self.assertEqual(
            demo_data.wmt_choice(penalty_a=0.0, penalty_b=5.0), {"choice": "a", "strength": 2}
        )
        self.assertEqual(
            demo_data.wmt_choice(penalty_a=30.0, penalty_b=25.1), {"choice": "b", "strength": 1}
        )

    def test_it_shows_every_system_and_every_pair(self) -> None:
        segments = list(itertools.islice(demo_data.wmt_segments("zh-en"), 9))
        seen: set[frozenset[str]] = set()
        for position, seg in enumerate(segments):
            pairs = demo_data.wmt_system_pairs(list(seg["targets"]), position)
            shown = [s for pair in pairs for s in pair]
            self.assertEqual(sorted(shown), sorted(seg["targets"]))  # every system once per segment
            seen.update(frozenset(pair) for pair in pairs)
        self.assertEqual(len(seen), 45)  # 10 systems: all pairs within 9 segments

    def test_it_gives_stable_items_without_markup(self) -> None:
        for lp in demo_data.WMT_LPS:
            items = list(demo_data.wmt_items(lp, limit=50))
            self.assertEqual(len(items), 50)
            self.assertEqual(items, list(demo_data.wmt_items(lp, limit=50)))
            self.assertEqual(len({i["external_id"] for i in items}), 50)
            for item in items:
                self.assertEqual(item["language"], lp.split("-")[1])
                self.assertNotEqual(item["response_a"], item["response_b"])
                for text in (item["prompt"], item["response_a"], item["response_b"]):
                    self.assertNotIn("<v>", text)
                    self.assertNotIn("</v>", text)
            self.assertEqual(len(list(demo_data.wmt_judgments(lp, limit=50))), 150)


class UdhrDataTests(SimpleTestCase):
    REQUIRED = (
        "ar",
        "he",
        "ur",
        "fa",
        "hi",
        "am",
        "zh",
        "ja",
        "th",
        "ko",
        "ru",
        "el",
        "sw",
        "yo",
        "si",
        "ne",
        "ta",
        "bn",
        "en",
        "de",
    )

    def test_it_covers_the_required_languages_and_many_scripts(self) -> None:
        tags = demo_data.udhr_languages()
        self.assertGreaterEqual(len(tags), 30)
        for tag in self.REQUIRED:
            self.assertIn(tag, tags)
        entries = demo_data.udhr_entries()
        self.assertGreaterEqual(len({e["script"] for e in entries}), 25)
        for entry in entries:
            self.assertTrue(entry["article1"].strip(), entry["code"])

    def test_it_marks_arabic_hebrew_and_urdu_right_to_left(self) -> None:
        by_tag = {e["bcp47"]: e for e in demo_data.udhr_entries()}
        for tag in ("ar", "he", "ur", "fa", "yi", "dv"):
            self.assertEqual(by_tag[tag]["dir"], "rtl", tag)
        for tag in ("hi", "zh", "ja", "th", "am", "en"):
            self.assertEqual(by_tag[tag]["dir"], "ltr", tag)

    def test_it_filters_by_tag_and_refuses_a_bad_one(self) -> None:
        items = list(demo_data.udhr_items(tags=["ar", "ur"]))
        self.assertEqual(
            sorted(i["external_id"] for i in items), ["udhr-arb", "udhr-urd", "udhr-urd_2"]
        )
        with self.assertRaisesMessage(
            ValueError, "'no such tag' is not a valid BCP 47 language tag"
        ):
            list(demo_data.udhr_items(tags=["no such tag"]))


class DemoDataImportTests(ParityTestCase):
    """The loaders' lines are accepted as they are by a fresh project."""

    def test_it_imports_mlqe_items_in_three_target_languages(self) -> None:
        project, _ = project_create_or_update(
            slug="mlqe",
            task_type=TaskType.RATING,
            languages=["de", "zh", "en"],
            schema={"scale": {"min": 0, "max": 100}},
        )
        lines = [
            line for pair in demo_data.MLQE_PAIRS for line in demo_data.mlqe_items(pair, limit=3)
        ]
        result = items_import(project=project, records=demo_data.numbered(lines), actor=self.lead)
        self.assertEqual(result.created, 21)
        item = Item.objects.get(project=project, external_id="mlqe-en-zh-0")
        self.assertEqual(item.language.tag, "zh")
        self.assertEqual(
            len(item.token_logprobs), len(next(demo_data.mlqe_segments("en-zh"))["tokens"])
        )
        self.assertEqual(Item.objects.filter(project=project, language__tag="en").count(), 15)
        again = items_import(project=project, records=demo_data.numbered(lines), actor=self.lead)
        self.assertEqual((again.created, again.unchanged), (0, 21))

    def test_it_imports_wmt_pairwise_items(self) -> None:
        project, _ = project_create_or_update(
            slug="wmt", task_type=TaskType.PAIRWISE, languages=["de", "en"]
        )
        lines = [line for lp in demo_data.WMT_LPS for line in demo_data.wmt_items(lp, limit=5)]
        result = items_import(project=project, records=demo_data.numbered(lines), actor=self.lead)
        self.assertEqual(result.created, 10)
        item = Item.objects.get(project=project, external_id="wmt23-zh-en-1-GPT4-5shot-vs-ONLINE-W")
        self.assertEqual(
            (item.language.tag, item.model_a, item.model_b), ("en", "GPT4-5shot", "ONLINE-W")
        )
        self.assertFalse(Judgment.objects.filter(item__project=project).exists())

    def test_it_imports_udhr_items_with_their_direction(self) -> None:
        project, _ = project_create_or_update(
            slug="udhr",
            task_type=TaskType.LABELS,
            languages=demo_data.udhr_languages(),
            schema={"labels": ["correct", "wrong_language"]},
        )
        lines = list(demo_data.udhr_items())
        result = items_import(project=project, records=demo_data.numbered(lines), actor=self.lead)
        self.assertEqual(result.created, len(demo_data.udhr_entries()))
        for code, tag, direction in (
            ("arb", "ar", "rtl"),
            ("heb", "he", "rtl"),
            ("urd", "ur", "rtl"),
            ("aii", "aii-Syrc", "rtl"),
            ("hin", "hi", "ltr"),
            ("tha", "th", "ltr"),
        ):
            item = Item.objects.get(project=project, external_id=f"udhr-{code}")
            self.assertEqual((item.language.tag, item.language.direction), (tag, direction))
        self.assertEqual(language_get_or_create(tag="ur").direction, "rtl")
