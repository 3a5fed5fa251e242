from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase

from active_learning.simulation import SimulationError, simulation_run


class SimulationTests(SimpleTestCase):
    def test_it_finds_more_bad_outputs_than_random_on_mlqe_pe_at_a_20_percent_budget(self):
        report = simulation_run(dataset="mlqe-pe", budget=0.2, seed=0, strategies=["random", "uncertainty"])
        self.assertEqual(len(report["results"]), 2 * 7)
        by = {(r["strategy"], r["language"]): r for r in report["results"]}
        self.assertEqual(by[("random", "ne-en")]["bad_total"], by[("uncertainty", "ne-en")]["bad_total"])
        random_recall = report["summary"]["random"]["mean_recall"]
        uncertainty_recall = report["summary"]["uncertainty"]["mean_recall"]
        self.assertGreater(uncertainty_recall, random_recall)
        # Not by a whisker: on MLQE-PE the model's own log-probs carry real signal.
        self.assertGreater(uncertainty_recall, random_recall + 0.05)

    def test_it_prints_json_and_writes_csv_and_a_plot(self):
        out_dir = Path(tempfile.mkdtemp(prefix="parity-al-sim-"))
        self.addCleanup(shutil.rmtree, out_dir, True)
        out = io.StringIO()
        call_command("al_simulate", "--budget", "0.2", "--seed", "1", "--limit", "120", "--json", "--out", str(out_dir),
                     stdout=out)
        payload = json.loads(out.getvalue())
        self.assertEqual(payload["budget"], 0.2)
        strategies = {r["strategy"] for r in payload["results"]}
        self.assertEqual(strategies, {"random", "uncertainty", "committee", "parity"})
        for row in payload["results"]:
            self.assertTrue({"strategy", "language", "bad_total", "bad_found", "recall"} <= set(row))
            self.assertLessEqual(row["bad_found"], row["bad_total"])
        self.assertTrue(any(c["strategy"] == "committee" for c in payload["curves"]))
        self.assertTrue((out_dir / "al_simulation.png").read_bytes().startswith(b"\x89PNG"))
        header = (out_dir / "al_simulation_results.csv").read_text().splitlines()[0]
        self.assertEqual(header, "strategy,language,bad_total,bad_found,recall")
        table = io.StringIO()
        call_command("al_simulate", "--limit", "60", "--strategies", "random,uncertainty", "--no-files", stdout=table)
        self.assertIn("mean recall", table.getvalue())

    def test_it_refuses_bad_input(self):
        for args, message in (
            (["--budget", "0"], "above 0 and at most 1"),
            (["--budget", "1.5"], "above 0 and at most 1"),
            (["--dataset", "imdb"], "unknown dataset 'imdb'"),
            (["--strategies", "random,magic"], "unknown strategy 'magic'"),
            (["--limit", "3"], "at least 20"),
        ):
            with self.assertRaisesMessage(CommandError, message):
                call_command("al_simulate", *args, "--no-files", stdout=io.StringIO(), stderr=io.StringIO())
        with self.assertRaises(SimulationError):
            simulation_run(budget=float("nan"))
