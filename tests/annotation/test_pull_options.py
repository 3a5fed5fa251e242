"""A pull's options, refused or applied field by field."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from django.core.management import call_command

from annotation.models import Item
from tests.annotation.api_support import import_judgments
from tests.annotation.export_support import PairsExportCase, votes


class PullOptionTests(PairsExportCase):
    """The options of a pull: retractions, TRL columns, splits, signals, and refusals."""

    def retractions(self, query: str = "") -> tuple[int, list[str], str]:
        response = self.call(
            "get",
            f"/api/v1/projects/chat-pairs/export/preferences/retractions/{query}",
            token=self.export_token,
        )
        self.assertIn(response.status_code, (200, 204), getattr(response, "content", b"")[:300])
        body = b"".join(response.streaming_content) if response.status_code == 200 else b""
        return (
            response.status_code,
            [json.loads(line)["item_id"] for line in body.decode().splitlines()],
            response["X-Parity-Cursor"],
        )

    def test_a_flipped_label_comes_again_and_a_lost_qualification_is_retracted(self):
        _lines, cursor = self.lines("?min_agreement=0.9")
        self.assertEqual(self.retractions(f"?since={cursor}&min_agreement=0.9")[0], 204)
        # p-0 (a, a, a) gains two b votes: still a, but its agreement falls under the filter.
        import_judgments(self.pairs, votes("p-0", "b", "b", first=10))
        # p-1 (b, b, a) gains two a votes: the label flips to a.
        import_judgments(self.pairs, votes("p-1", "a", "a", first=10))
        lines, _ = self.lines(f"?since={cursor}")
        self.assertEqual(
            [(r["item_id"], r["chosen"]) for r in lines],
            [("p-0", "Antwort A0"), ("p-1", "Antwort A1")],
        )
        status, retracted, _ = self.retractions(f"?since={cursor}&min_agreement=0.9")
        self.assertEqual((status, retracted), (200, ["p-0", "p-1"]))
        self.assertEqual(self.lines(f"?since={cursor}&min_agreement=0.9")[0], [])

    def test_margin_only_when_asked_and_then_in_zero_one(self):
        rows = self.lines("?margin=scaled&include_ties=true")[0]
        self.assertEqual(
            {r["item_id"]: r["margin"] for r in rows},
            {"p-0": 1.0, "p-1": 1.0, "p-2": 0.0, "p-6": 1.0},
        )
        self.assertTrue(all("margin" not in r for r in self.lines()[0]))

    def test_the_split_is_deterministic_and_keeps_each_prompt_on_one_side(self):
        everything = {r["item_id"] for r in self.lines("?include_ties=true")[0]}
        train = {
            r["item_id"] for r in self.lines("?include_ties=true&split=train&test_fraction=0.5")[0]
        }
        test = {
            r["item_id"] for r in self.lines("?include_ties=true&split=test&test_fraction=0.5")[0]
        }
        self.assertEqual((train | test, train & test), (everything, set()))
        self.assertEqual(
            train,
            {
                r["item_id"]
                for r in self.lines("?include_ties=true&split=train&test_fraction=0.5")[0]
            },
        )

    def test_a_prompt_template_writes_the_prompt(self):
        row = self.lines(
            "?prompt_template="
            + "Q: {prompt}\nA:".replace("\n", "%0A")
            .replace(" ", "%20")
            .replace("{", "%7B")
            .replace("}", "%7D")
        )[0][0]
        self.assertEqual(row["prompt"], "Q: Frage 0?\nA:")

    def test_signals_carry_each_sides_reward_and_log_prob(self):
        Item.objects.filter(external_id="p-1").update(
            reward_a=0.1, reward_b=0.9, token_logprobs=[-1.0, -3.0]
        )
        row = next(r for r in self.lines("?signals=1")[0] if r["item_id"] == "p-1")
        self.assertEqual((row["reward_chosen"], row["reward_rejected"]), (0.9, 0.1))
        # The log-probs are response A's, the rejected side here.
        self.assertEqual((row["mean_logprob_chosen"], row["mean_logprob_rejected"]), (None, -2.0))

    def test_bad_options_are_refused_by_field(self):
        for query, field in (
            ("?shape=unpaired", "shape"),
            ("?pairs=all", "pairs"),
            ("?min_gap=1", "min_gap"),
            ("?prompt_template=nothing", "prompt_template"),
            ("?test_fraction=0.5", "test_fraction"),
            ("?split=dev", "split"),
            ("?margin=raw", "margin"),
            ("?threshold=3", "threshold"),
            ("?style=conversational&prompt_template=%7Bprompt%7D", "prompt_template"),
        ):
            with self.subTest(query=query):
                response = self.call(
                    "get",
                    f"/api/v1/projects/chat-pairs/export/preferences/{query}",
                    token=self.export_token,
                )
                self.assertErrors(response, 400, field=field)
        _lines, cursor = self.lines()
        response = self.call(
            "get",
            f"/api/v1/projects/chat-pairs/export/preferences/?method=dawid_skene&since={cursor}",
            token=self.export_token,
        )
        self.assertErrors(response, 400, field="since", contains="pull it in full")

    def test_the_command_writes_nothing_for_an_empty_pull_and_lists_retractions(self):
        _lines, cursor = self.lines()
        err = io.StringIO()
        with tempfile.TemporaryDirectory() as tmp:
            call_command(
                "export_preferences",
                "--project",
                "chat-pairs",
                "--since",
                cursor,
                "-o",
                f"{tmp}/p.jsonl",
                stderr=err,
            )
            self.assertFalse(Path(f"{tmp}/p.jsonl").exists())
            self.assertIn("no lines; nothing written", err.getvalue())
            import_judgments(self.pairs, votes("p-6", "a", "a", "a", "a", first=10))
            call_command(
                "export_preferences",
                "--project",
                "chat-pairs",
                "--since",
                cursor,
                "--retractions",
                "--min-agreement",
                "0.9",
                "-o",
                f"{tmp}/r.jsonl",
                stderr=io.StringIO(),
            )
            self.assertEqual(Path(f"{tmp}/r.jsonl").read_text(), '{"item_id":"p-6"}\n')
