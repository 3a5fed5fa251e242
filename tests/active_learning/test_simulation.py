from __future__ import annotations

import io
import json
import math
import shutil
import tarfile
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase

from active_learning.simulation import (
    SimulationError,
    achievable_gain,
    learning_curve,
    simulation_load,
    simulation_run,
    strategy_parity,
)


def _tiny_jsonl(path: Path) -> None:
    """Two languages of 40 items; in each, 8 bad outputs the model was unsure of (low log-probs)."""
    lines = []
    for language in ("sw", "de"):
        for n in range(40):
            bad = n % 5 == 0
            lines.append(
                {
                    "language": language,
                    "prompt": f"source sentence number {n}",
                    "response": f"{language} output {n} "
                    + " ".join(f"w{n * 7 + j}" for j in range(n % 4 + 2)),
                    "token_logprobs": [math.log(0.05 if bad else 0.9)] * 6,
                    "score": 20 + n % 3 if bad else 80 + n % 7,
                }
            )
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")


class AchievableGainTests(SimpleTestCase):
    def test_it_measures_the_share_between_random_and_the_oracle(self):
        # 100 outputs, 10 bad, 20 sent: random finds 2 on average, the oracle all 10.
        self.assertEqual(
            achievable_gain(picked=20, found=8, bad=10, n=100),
            {"random_expected": 2.0, "oracle": 10, "share": 0.75},
        )
        self.assertEqual(achievable_gain(picked=20, found=10, bad=10, n=100)["share"], 1.0)
        self.assertEqual(achievable_gain(picked=20, found=2, bad=10, n=100)["share"], 0.0)
        # The budget caps the oracle: 811 bad of 1,000, 200 sent.
        gain = achievable_gain(picked=200, found=197, bad=811, n=1000)
        self.assertEqual((gain["random_expected"], gain["oracle"]), (162.2, 200))
        self.assertAlmostEqual(gain["share"], (197 - 162.2) / (200 - 162.2), places=4)

    def test_it_leaves_the_share_undefined_when_nothing_is_achievable(self):
        for case in (
            {"picked": 20, "found": 0, "bad": 0, "n": 100},  # nothing bad
            {"picked": 20, "found": 20, "bad": 100, "n": 100},  # everything bad
            {"picked": 100, "found": 10, "bad": 10, "n": 100},
        ):  # the whole pool sent
            self.assertIsNone(achievable_gain(**case)["share"], case)


class LearningCurveTests(SimpleTestCase):
    def test_it_compares_the_committee_with_random_where_both_had_a_model(self):
        def row(seed, strategy, step, accuracy):
            return {
                "seed": seed,
                "strategy": strategy,
                "language": "et-en",
                "step": step,
                "labels": 50 * step,
                "accuracy": accuracy,
            }

        curve = learning_curve(
            [
                row(0, "committee", 1, 0.60),
                row(0, "random", 1, 0.70),
                row(1, "committee", 1, None),  # seed 1: no committee yet, not compared
                row(1, "random", 1, 0.10),
                row(0, "committee", 2, 0.72),
                row(0, "random", 2, 0.70),
                row(1, "committee", 2, 0.68),
                row(1, "random", 2, 0.66),
            ]
        )
        first, second = curve
        self.assertEqual(
            (first["committee"], first["random"], first["difference"]), (0.6, 0.7, -0.1)
        )
        self.assertEqual((first["runs"], first["runs_without_committee"]), (1, 1))
        self.assertEqual((second["labels"], second["difference"], second["runs"]), (100, 0.02, 2))


class SimulationTests(SimpleTestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="parity-al-sim-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_it_finds_more_bad_outputs_than_random_on_mlqe_pe_at_a_20_percent_budget(self):
        report = simulation_run(
            dataset="mlqe-pe", budget=0.2, seed=0, strategies=["random", "uncertainty"]
        )
        self.assertEqual(len(report["results"]), 2 * 7)
        by = {(r["strategy"], r["language"]): r for r in report["results"]}
        self.assertEqual(by[("random", "ne-en")]["bad_total"], 811)
        self.assertEqual(by[("uncertainty", "ne-en")]["oracle"], 200)
        self.assertAlmostEqual(by[("uncertainty", "ne-en")]["random_expected"], 162.2)
        self.assertGreater(
            report["summary"]["uncertainty"]["mean_share"],
            report["summary"]["random"]["mean_share"] + 0.2,
        )
        self.assertEqual(report["best"], "uncertainty")

    def test_the_parity_strategy_takes_the_audit_share_it_is_given(self):
        path = self.tmp / "tiny.jsonl"
        _tiny_jsonl(path)
        languages = simulation_load(data=path)
        default = strategy_parity(languages, 0.5, seed=0)
        wider = strategy_parity(languages, 0.5, seed=0, audit_shares=(0.5, 0.5))
        audits = [
            sum(chosen.count("audit") for chosen in labels.selection.values())
            for labels in (default, wider)
        ]
        # A budget of 40 over two rounds: the audit slice is its share of each round's
        # budget — half of it when asked, at most 15 % by default.
        self.assertEqual(audits[1], 20)
        self.assertLessEqual(audits[0], 6)
        for labels in (default, wider):
            self.assertEqual(sum(len(p) for p in labels.picked.values()), 40)

    def test_the_audit_share_buys_estimates_with_bad_outputs_found(self):
        path = self.tmp / "tiny.jsonl"
        _tiny_jsonl(path)
        out = io.StringIO()
        call_command(
            "al_simulate",
            "--data",
            str(path),
            "--budget",
            "0.5",
            "--audit-share",
            "1",
            "--strategies",
            "committee,parity",
            "--json",
            "--no-files",
            stdout=out,
        )
        report = json.loads(out.getvalue())
        self.assertEqual(report["audit_share"], 1)
        for row in report["results"]:
            # Everything sent to humans was drawn at random: nothing better than random.
            self.assertEqual(row["audit"], row["picked"], row)
        default = simulation_run(data=path, budget=0.5, strategies=["committee", "parity"])
        self.assertIsNone(default["audit_share"])
        for row in default["results"]:
            self.assertLess(row["audit"], row["picked"] / 2, row)
            self.assertGreater(row["share"], 0.5, row)  # the picks find the bad outputs

    def test_it_replays_a_json_lines_file_through_data(self):
        path = self.tmp / "history.jsonl"
        _tiny_jsonl(path)
        out = io.StringIO()
        call_command(
            "al_simulate",
            "--data",
            str(path),
            "--budget",
            "0.2",
            "--json",
            "--out",
            str(self.tmp / "out"),
            stdout=out,
        )
        payload = json.loads(out.getvalue())
        self.assertEqual(payload["bad_below"], 53.0)  # the midpoint of scores 20–86
        rows = {(r["strategy"], r["language"]): r for r in payload["results"]}
        self.assertEqual({lang for _, lang in rows}, {"sw", "de"})
        for row in payload["results"]:
            self.assertEqual((row["n"], row["bad_total"]), (40, 8))
            if row["strategy"] != "parity":  # parity moves budget between languages
                self.assertEqual(row["picked"], 8)
                self.assertEqual((row["random_expected"], row["oracle"]), (1.6, 8))
            self.assertAlmostEqual(
                row["share"],
                (row["bad_found"] - row["random_expected"])
                / (row["oracle"] - row["random_expected"]),
                places=3,
            )
        # The log-probs give the bad outputs away: the product's selection (top score, then
        # k-center diversity among the top candidates) finds nearly all eight; random does not.
        for language in ("sw", "de"):
            self.assertGreaterEqual(rows[("uncertainty", language)]["bad_found"], 7)
        self.assertGreater(payload["summary"]["uncertainty"]["mean_share"], 0.8)
        self.assertLess(payload["summary"]["random"]["mean_share"], 0.5)
        self.assertIn("quality_estimate_error_mean", payload["summary"]["parity"])
        header = (self.tmp / "out" / "al_simulation_results.csv").read_text().splitlines()[0]
        self.assertEqual(
            header,
            "strategy,language,picked,bad_found,bad_total,n,random_expected,oracle,share,recall,audit",
        )
        self.assertTrue(
            (self.tmp / "out" / "al_simulation.png").read_bytes().startswith(b"\x89PNG")
        )

    def test_it_replays_archives_in_the_mlqe_pe_layout_whatever_the_split(self):
        rows = ["index\toriginal\ttranslation\tscores\tmean\tz_scores\tz_mean\tmodel_scores"]
        probas = []
        for n in range(30):
            bad = n < 6
            words = " ".join(f"w{n * 5 + j}" for j in range(3))
            rows.append(f"{n}\tSource {n}.\tZiel {words}.\t[1]\t{30 if bad else 90}\t[0]\t0\t-0.5")
            probas.append(" ".join(["-3.2" if bad else "-0.1"] * 4))
        folder = self.tmp / "test20-ende"
        (folder / "word-probas").mkdir(parents=True)
        (folder / "test20.ende.df.short.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (folder / "word-probas" / "word_probas.test20.ende").write_text(
            "\n".join(probas) + "\n", encoding="utf-8"
        )
        archives = self.tmp / "archives"
        archives.mkdir()
        with tarfile.open(archives / "en-de-test20.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="en-de-test20")
        report = simulation_run(data=archives, budget=0.2, strategies=["uncertainty"])
        (row,) = report["results"]
        self.assertEqual(
            (row["language"], row["n"], row["bad_total"], row["picked"]), ("en-de", 30, 6, 6)
        )
        self.assertGreaterEqual(
            row["bad_found"], 5
        )  # the word-probas were read: low log-probs are found
        self.assertEqual(report["bad_below"], 50)

    def test_it_prints_a_table_with_the_share_and_recall(self):
        table = io.StringIO()
        call_command(
            "al_simulate",
            "--limit",
            "60",
            "--strategies",
            "random,uncertainty",
            "--no-files",
            stdout=table,
            stderr=io.StringIO(),
        )
        text = table.getvalue()
        for column in ("k", "found", "random", "oracle", "share", "recall"):
            self.assertIn(column, text)
        self.assertIn("best strategy by mean share", text)
        self.assertNotIn("committee learning curve", text)  # no committee, no curve

    def test_it_prints_the_committees_learning_curve_against_random(self):
        table = io.StringIO()
        call_command(
            "al_simulate",
            "--limit",
            "100",
            "--strategies",
            "committee",
            "--no-files",
            stdout=table,
            stderr=io.StringIO(),
        )
        text = table.getvalue()
        self.assertIn("committee learning curve", text)
        curve = [line for line in text.splitlines() if line.startswith("  et-en ")]
        self.assertEqual(len(curve), 1)
        self.assertIn("20:", curve[0])  # the last round: 20 labels of 100

    def test_it_refuses_bad_input(self):
        bad_line = self.tmp / "bad.jsonl"
        bad_line.write_text(
            '{"language": "de", "response": "x", "score": 3}\n{"language": "de", "response": "y"}\n'
        )
        for args, message in (
            (["--budget", "0"], "above 0 and at most 1"),
            (["--budget", "1.5"], "above 0 and at most 1"),
            (["--dataset", "imdb"], "unknown dataset 'imdb'"),
            (["--strategies", "random,magic"], "unknown strategy 'magic'"),
            (["--limit", "3"], "at least 20"),
            (["--data", str(self.tmp / "nowhere")], "does not exist"),
            (["--data", str(bad_line)], "line 2: score must be a finite number"),
            (["--data", str(self.tmp)], "no <prefix>.<pair>.df.short.tsv found"),
            (["--seeds", "0-x"], "--seeds takes whole numbers"),
            (["--audit-share", "0"], "above 0 and at most 1, not 0.0"),
            (["--audit-share", "1.5"], "above 0 and at most 1, not 1.5"),
            (["--audit-share", "nan"], "above 0 and at most 1, not nan"),
        ):
            with self.assertRaisesMessage(CommandError, message):
                call_command(
                    "al_simulate", *args, "--no-files", stdout=io.StringIO(), stderr=io.StringIO()
                )
        with self.assertRaises(SimulationError):
            simulation_run(budget=float("nan"))
