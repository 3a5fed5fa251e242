"""`python manage.py demo`: users, four real-data projects with gold items, guidelines and
a calibration round, idempotent, claimable queues, a pool for active learning."""

from __future__ import annotations

import json
from io import StringIO
from unittest import mock

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings
from django.urls import reverse

from annotation.adjudication import adjudication_judgments, adjudication_queue
from annotation.demo_data import mlqe_segments, wmt_judgments
from annotation.exports.preferences import UNPAIRED_COLUMNS
from annotation.models import (
    AssignmentKind,
    AuditEvent,
    EvaluatorLanguage,
    GoldAnswer,
    Item,
    ItemStatus,
    Judgment,
    Project,
    Qualification,
    QualificationStatus,
    TaskType,
)
from annotation.queue import NotQualified, item_claim_next
from annotation.tokens import api_token_create

PASSWORD = "demo-pw-in-tests"


def run_demo(*args: str) -> str:
    out = StringIO()
    call_command("demo", "--limit", "3", "--password", PASSWORD, *args, stdout=out)
    return out.getvalue()


def table_counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "projects": Project.objects.count(),
        "items": Item.objects.count(),
        "qualifications": Qualification.objects.count(),
        "evaluator_languages": EvaluatorLanguage.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


# Not ParityTestCase: the demo brings its own cast (a "lead" among them), which the base
# cast would collide with.
class DemoCommandTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        cls.output = run_demo()
        cls.users = {u.username: u for u in get_user_model().objects.all()}

    def test_it_creates_three_projects_with_real_data(self) -> None:
        projects = {p.slug: p for p in Project.objects.all()}
        self.assertEqual(projects["mlqe-da"].task_type, TaskType.RATING)
        self.assertEqual(projects["mlqe-da"].schema["scale"]["max"], 100)
        self.assertEqual(projects["wmt23-sxs"].task_type, TaskType.PAIRWISE)
        self.assertEqual(projects["udhr-labels"].task_type, TaskType.LABELS)
        self.assertIn("wrong_language", projects["udhr-labels"].schema["labels"])
        # --limit 3: three segments from each of the seven MLQE-PE pairs and each WMT23 pair.
        self.assertEqual(
            Item.objects.filter(project=projects["mlqe-da"], is_gold=False).count(), 21
        )
        self.assertEqual(
            Item.objects.filter(project=projects["wmt23-sxs"], is_gold=False).count(), 6
        )
        udhr_tags = set(projects["udhr-labels"].languages.values_list("tag", flat=True))
        self.assertGreaterEqual(len(udhr_tags), 20)
        self.assertLessEqual({"ar", "he", "ur", "hi", "am", "zh", "ja", "th"}, udhr_tags)
        for project in projects.values():
            self.assertTrue(project.leads.filter(username="lead").exists())

    def test_it_registers_the_wmt23_systems_released_in_the_data_sets_year(self) -> None:
        from annotation.progress import progress_report

        wmt = Project.objects.get(slug="wmt23-sxs")
        names = set(
            Item.objects.filter(project=wmt, is_gold=False).values_list("model_a", flat=True)
        )
        versions = {mv.name: mv for mv in wmt.model_versions.all()}
        self.assertLessEqual(names, set(versions))
        self.assertEqual({mv.released_on.year for mv in versions.values()}, {2023})
        self.assertEqual(
            {
                mv.released_on.year
                for mv in Project.objects.get(slug="mlqe-da").model_versions.all()
            },
            {2020},
        )
        report = progress_report(project=wmt, by="model", resamples=50)
        self.assertTrue({k["key"] for k in report["keys"]} <= set(versions))
        self.assertTrue(all("bradley_terry" in row for row in report["languages"]))

    def test_it_prints_the_url_and_every_login(self) -> None:
        self.assertIn("http://127.0.0.1:8000/", self.output)
        self.assertIn(PASSWORD, self.output)
        for username in ("lead", "hans", "greta", "jonas", "li", "emma", "amira", "priya", "yuki"):
            self.assertIn(f"  {username} ", self.output)
        self.assertIn("pending calibration in udhr-labels (ja)", self.output)

    def test_it_makes_logins_that_work(self) -> None:
        lead = self.users["lead"]
        self.assertTrue(lead.is_superuser and lead.is_staff)
        self.assertTrue(self.client.login(username="hans", password=PASSWORD))

    def test_it_changes_nothing_on_a_second_run(self) -> None:
        before = table_counts()
        hashes = dict(Item.objects.values_list("external_id", "content_hash"))
        output = run_demo()
        self.assertEqual(table_counts(), before)
        self.assertEqual(dict(Item.objects.values_list("external_id", "content_hash")), hashes)
        self.assertIn("http://127.0.0.1:8000/", output)

    def test_it_adds_only_what_is_missing_when_the_limit_grows(self) -> None:
        call_command("demo", "--limit", "4", "--password", PASSWORD, stdout=StringIO())
        self.assertEqual(Item.objects.filter(project__slug="mlqe-da", is_gold=False).count(), 28)
        self.assertEqual(Item.objects.filter(project__slug="wmt23-sxs", is_gold=False).count(), 8)
        self.assertEqual(Item.objects.filter(project__slug="mlqe-pool").count(), 12)

    def test_it_queues_items_for_each_evaluator_in_their_languages(self) -> None:
        expected = {
            ("hans", "mlqe-da"): {"de"},
            ("hans", "wmt23-sxs"): {"de"},
            ("hans", "udhr-labels"): {"de"},
            ("li", "mlqe-da"): {"zh"},
            ("emma", "wmt23-sxs"): {"en"},
            ("amira", "udhr-labels"): {"ar", "he"},
            ("priya", "udhr-labels"): {"hi"},
        }
        for (username, slug), tags in expected.items():
            project = Project.objects.get(slug=slug)
            assignment = item_claim_next(evaluator=self.users[username], project=project)
            self.assertIsNotNone(assignment, f"{username} has nothing to claim in {slug}")
            self.assertIn(assignment.item.language.tag, tags)

    def test_its_mlqe_ratings_export_as_unpaired_lines(self) -> None:
        project = Project.objects.get(slug="mlqe-da")
        token = api_token_create(project=project, scope="export")[1]
        url = "/api/v1/projects/mlqe-da/export/preferences/"
        auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        response = self.client.get(f"{url}?shape=unpaired", **auth)
        self.assertEqual(response.status_code, 200)
        lines = [
            json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
        ]
        # Every judged translation (three from each of the seven pairs; no prompt ids needed),
        # the honeypots never.
        self.assertEqual(len(lines), 21)
        self.assertEqual(len({line["item_id"] for line in lines}), 21)
        self.assertTrue(all(line["item_id"].startswith("mlqe-") for line in lines))
        for line in lines:
            self.assertEqual(tuple(line), UNPAIRED_COLUMNS)
            self.assertEqual(line["label"], line["score"] >= 50)  # the middle of the 0–100 scale
            self.assertTrue(line["prompt"].endswith("\n") and line["completion"])
        self.assertEqual(
            {line["language"] for line in lines},
            set(project.languages.values_list("tag", flat=True)),
        )
        self.assertEqual({line["label"] for line in lines}, {True, False})
        # MLQE-PE has one translation per source sentence, so there is nothing to pair, even
        # with pairs=all: an empty pull (204), not made-up pairs.
        self.assertEqual(self.client.get(f"{url}?pairs=all", **auth).status_code, 204)

    def test_it_shows_right_to_left_items_to_amira(self) -> None:
        project = Project.objects.get(slug="udhr-labels")
        assignment = item_claim_next(evaluator=self.users["amira"], project=project)
        self.assertEqual(assignment.item.language.direction, "rtl")

    def test_it_keeps_the_pending_evaluator_out_of_the_queue(self) -> None:
        project = Project.objects.get(slug="udhr-labels")
        qualification = Qualification.objects.get(evaluator=self.users["yuki"], project=project)
        self.assertEqual(qualification.status, QualificationStatus.PENDING)
        with self.assertRaises(NotQualified):
            item_claim_next(evaluator=self.users["yuki"], project=project)

    def test_it_makes_mlqe_honeypots_live_with_real_gold_items(self) -> None:
        project = Project.objects.get(slug="mlqe-da")
        self.assertGreater(project.honeypot_rate, 0)
        gold = GoldAnswer.objects.filter(item__project=project).select_related("item__language")
        self.assertEqual({g.item.language.tag for g in gold}, {"de", "zh", "en"})
        for answer in gold:
            self.assertTrue(answer.item.is_gold)
            self.assertTrue(answer.explanation)
            self.assertEqual(answer.tolerance, {"points": 15})
            self.assertTrue(answer.item.prompt and answer.item.response)
        # A honeypot is served like any item and counts towards honeypot accuracy.
        with mock.patch("annotation.queue.claim._rng.random", return_value=0.0):
            assignment = item_claim_next(evaluator=self.users["hans"], project=project)
        self.assertEqual(assignment.kind, AssignmentKind.HONEYPOT)
        self.assertEqual(assignment.item.external_id, "gold-mlqe-en-de-902")

    def test_it_declares_look_alike_texts_as_japanese_gold_items(self) -> None:
        project = Project.objects.get(slug="udhr-labels")
        gold = {
            g.item.external_id: g
            for g in GoldAnswer.objects.filter(item__project=project).select_related("item")
        }
        self.assertEqual(
            set(gold), {"gold-ja-jpn", "gold-ja-cmn-hans", "gold-ja-cmn-hant", "gold-ja-kor"}
        )
        self.assertEqual(gold["gold-ja-jpn"].value, {"labels": ["correct"]})
        self.assertEqual(gold["gold-ja-kor"].value, {"labels": ["wrong_language"]})
        self.assertTrue(all(g.item.language.tag == "ja" and g.explanation for g in gold.values()))
        # The language check flags the look-alikes (and only them) for the lead's dashboard.
        flagged = set(
            Item.objects.filter(project=project, language_flagged=True).values_list(
                "external_id", flat=True
            )
        )
        self.assertEqual(flagged, {"gold-ja-cmn-hans", "gold-ja-cmn-hant", "gold-ja-kor"})
        # The real Japanese text, as the data set has it.
        self.assertEqual(
            gold["gold-ja-jpn"].item.response,
            Item.objects.get(project=project, external_id="udhr-jpn").response,
        )

    def test_it_leaves_a_labelled_pool_for_active_learning(self) -> None:
        project = Project.objects.get(slug="mlqe-pool")
        self.assertFalse(project.queue_on_import)
        items = Item.objects.filter(project=project)
        # --limit 3: three segments of each of the three pairs, all waiting in the pool.
        self.assertEqual(items.count(), 9)
        self.assertEqual(set(items.values_list("status", flat=True)), {ItemStatus.POOL})
        self.assertEqual(set(items.values_list("language__tag", flat=True)), {"de", "zh", "en"})
        labelled = items.filter(judgments__kind="historical").distinct()
        self.assertEqual(labelled.count(), 3)  # the first third of each pair
        self.assertTrue(
            Judgment.objects.filter(item__in=labelled, external_rater__isnull=False).exists()
        )
        for username in ("hans", "li", "emma"):
            self.assertTrue(
                Qualification.objects.filter(
                    project=project,
                    evaluator=self.users[username],
                    status=QualificationStatus.QUALIFIED,
                ).exists()
            )

    def test_it_publishes_guidelines_that_qualified_evaluators_have_acknowledged(self) -> None:
        for project in Project.objects.all():
            self.assertEqual(project.guideline_version, "1.0.0", project.slug)
            qualified = Qualification.objects.filter(
                project=project, status=QualificationStatus.QUALIFIED
            )
            self.assertTrue(qualified.exists())
            self.assertFalse(qualified.exclude(acknowledged_version="1.0.0").exists(), project.slug)
        # yuki's click-through starts by reading it.
        yuki = Qualification.objects.get(evaluator=self.users["yuki"], project__slug="udhr-labels")
        self.assertEqual(yuki.acknowledged_version, "")

    def test_it_says_what_to_try_with_each_login(self) -> None:
        self.assertIn("What to try", self.output)
        self.assertIn("calibration round", self.output)
        self.assertIn("mlqe-pool", self.output)
        self.assertIn("5 gold items, honeypots at 5%", self.output)
        self.assertIn("9 in the pool for active learning, 3 of them labelled", self.output)

    def test_it_serves_on_the_given_port_through_gunicorn(self) -> None:
        with (
            override_settings(DEBUG=True),
            mock.patch("annotation.management.commands.demo.call_command"),
            mock.patch("annotation.management.commands.demo.demo_serve", return_value=0) as serve,
        ):
            run_demo("--serve", "--port", "8123")
        serve.assert_called_once_with(port=8123)


class DemoAdjudicationTests(TestCase):
    """The first German WMT23 pairs are judged through the queue by three demo evaluators
    giving the MQM raters' verdicts, so the lead finds real disagreements to adjudicate."""

    @classmethod
    def setUpTestData(cls) -> None:
        out = StringIO()
        # --limit 45: 18 pairs replayed (two in five), the 17th of which the raters split on.
        call_command("demo", "--limit", "45", "--password", PASSWORD, stdout=out)
        cls.output = out.getvalue()
        cls.project = Project.objects.get(slug="wmt23-sxs")

    def german_pairs(self) -> list[Item]:
        return list(Item.objects.filter(project=self.project, language__tag="de").order_by("id"))

    def test_the_first_german_pairs_are_judged_by_three_evaluators_and_the_rest_by_the_raters(
        self,
    ) -> None:
        pairs = self.german_pairs()
        self.assertEqual(len(pairs), 45)
        for n, item in enumerate(pairs):
            kinds = sorted(item.judgments.values_list("kind", flat=True))
            if n < 18:
                self.assertEqual(kinds, ["production"] * 3, item.external_id)
                self.assertEqual(
                    set(item.judgments.values_list("evaluator__username", flat=True)),
                    {"hans", "greta", "jonas"},
                )
            else:
                self.assertEqual(kinds, ["historical"] * 3, item.external_id)
        # Each replayed judgment is a verdict of the pair's MQM raters, in their order.
        replayed = {item.external_id: item for item in pairs[:18]}
        verdicts = {}
        for line in wmt_judgments("en-de", 45):
            if line["item_external_id"] in replayed:
                verdicts.setdefault(line["item_external_id"], []).append(line["value"])
        for external_id, item in replayed.items():
            given = [
                j.value
                for j in sorted(
                    item.judgments.select_related("evaluator"),
                    key=lambda j: ("hans", "greta", "jonas").index(j.evaluator.username),
                )
            ]
            self.assertEqual(given, verdicts[external_id], external_id)

    def test_the_pair_the_raters_split_on_waits_for_the_lead(self) -> None:
        lead = get_user_model().objects.get(username="lead")
        waiting = list(adjudication_queue(project=self.project, user=lead))
        self.assertEqual(
            [item.external_id for item in waiting],
            ["wmt23-en-de-4-GPT4-5shot_with_refA-vs-ONLINE-G"],
        )
        self.assertEqual(
            sorted(j.value["choice"] for j in adjudication_judgments(item=waiting[0])),
            ["a", "b", "tie"],
        )
        self.assertEqual(
            Item.objects.filter(project=self.project, status=ItemStatus.DONE).count(), 17
        )
        self.assertIn("1 waiting for adjudication", self.output)

    def test_a_second_run_neither_replays_nor_imports_the_replayed_pairs_verdicts(self) -> None:
        before = Judgment.objects.filter(item__project=self.project).count()
        call_command("demo", "--limit", "45", "--password", PASSWORD, stdout=StringIO())
        self.assertEqual(Judgment.objects.filter(item__project=self.project).count(), before)
        # And hans's queue goes on after the pairs he replayed.
        hans = get_user_model().objects.get(username="hans")
        assignment = item_claim_next(evaluator=hans, project=self.project)
        self.assertEqual(assignment.item.pk, self.german_pairs()[18].pk)


class DemoCommandInputTests(TestCase):
    def test_it_refuses_the_published_password_with_debug_off(self) -> None:
        with self.assertRaisesMessage(CommandError, "DEBUG is off"):
            call_command("demo", "--limit", "1", stdout=StringIO())
        self.assertFalse(Project.objects.exists())
        self.assertFalse(get_user_model().objects.exists())

    def test_it_refuses_a_bad_limit_or_port(self) -> None:
        with self.assertRaisesMessage(CommandError, "--limit must be at least 1, not 0"):
            call_command("demo", "--limit", "0", "--password", PASSWORD, stdout=StringIO())
        with self.assertRaisesMessage(CommandError, "--port must be between 1 and 65535"):
            call_command("demo", "--port", "70000", "--password", PASSWORD, stdout=StringIO())
        self.assertFalse(Project.objects.exists())

    def test_it_refuses_to_serve_with_debug_off(self) -> None:
        with self.assertRaisesMessage(CommandError, "run it with DEBUG=1"):
            call_command("demo", "--serve", "--password", PASSWORD, stdout=StringIO())


class DemoServeTests(TestCase):
    def test_serve_runs_gunicorn_with_threads_on_loopback_not_runserver(self):
        from unittest import mock

        from annotation.management.commands import demo

        with mock.patch.object(demo.subprocess, "run", return_value=mock.Mock(returncode=0)) as run:
            self.assertEqual(demo.demo_serve(port=8123), 0)
        command, env = run.call_args.args[0], run.call_args.kwargs["env"]
        self.assertEqual(command[1:3], ["-m", "gunicorn"])
        self.assertEqual(
            (env["GUNICORN_BIND"], env["GUNICORN_WORKERS"], env["GUNICORN_THREADS"]),
            ("127.0.0.1:8123", "1", str(demo.DEMO_THREADS)),
        )

    def test_the_embedded_sqlite_database_runs_in_wal_mode(self):
        import tempfile

        from django.db.backends.sqlite3.base import DatabaseWrapper

        from parity.settings import SQLITE_OPTIONS

        with tempfile.TemporaryDirectory() as folder:
            wrapper = DatabaseWrapper(
                {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": f"{folder}/demo.sqlite3",
                    "OPTIONS": SQLITE_OPTIONS,
                    "ATOMIC_REQUESTS": False,
                    "AUTOCOMMIT": True,
                    "CONN_MAX_AGE": 0,
                    "CONN_HEALTH_CHECKS": False,
                    "TIME_ZONE": None,
                    "USER": "",
                    "PASSWORD": "",
                    "HOST": "",
                    "PORT": "",
                    "TEST": {},
                }
            )
            try:
                with wrapper.cursor() as cursor:
                    cursor.execute("PRAGMA journal_mode")
                    self.assertEqual(cursor.fetchone()[0], "wal")
            finally:
                wrapper.close()


class DemoRoundTests(TestCase):
    """A pool large enough to spare a round: the demo runs one with the parity strategy
    on mlqe-pool, judges its picks with MLQE-PE's real scores, and the progress report
    shows each language before and after it. (A smaller pool is left whole: see
    DemoCommandTests.) The threshold is lowered to the pool of --limit 15, 30 unlabelled
    items, so that the test loads a tenth of the default demo."""

    @classmethod
    def setUpTestData(cls) -> None:
        out = StringIO()
        with mock.patch("active_learning.management.commands.demo_al_round.MIN_POOL", 30):
            call_command("demo", "--limit", "15", "--password", PASSWORD, stdout=out)
        cls.output = out.getvalue()
        cls.project = Project.objects.get(slug="mlqe-pool")

    def test_it_runs_one_parity_round_and_judges_its_picks_with_the_raters_scores(self) -> None:
        from active_learning.models import RoundItem, SelectionRound

        (selection_round,) = SelectionRound.objects.filter(project=self.project)
        self.assertEqual(selection_round.strategy, "parity")
        picks = RoundItem.objects.filter(round=selection_round).select_related("item")
        self.assertEqual(picks.count(), selection_round.budget)
        self.assertEqual({p.selection for p in picks}, {"audit", "uncertainty"})
        pair, index = "en-de", None
        for pick in picks:
            self.assertEqual(pick.item.status, ItemStatus.QUEUED)
            if pick.item.metadata["pair"] == pair:
                index = int(pick.item.external_id.rsplit("-", 1)[1])
        segment = next(s for s in mlqe_segments(pair) if s["index"] == index)
        item = Item.objects.get(project=self.project, external_id=f"mlqe-{pair}-{index}")
        scores = sorted(
            Judgment.objects.filter(item=item, kind="historical").values_list(
                "value__score", flat=True
            )
        )
        self.assertEqual(scores, sorted(int(s) for s in segment["scores"]))
        self.assertIn("one active-learning round judged", self.output)

    def test_its_progress_report_shows_each_language_before_and_after_the_round(self) -> None:
        from annotation.progress import progress_report

        since = progress_report(project=self.project, by="model", resamples=100)["since_round"]
        self.assertEqual(since["strategy"], "parity")
        rows = {row["language"]: row for row in since["languages"]}
        self.assertEqual(set(rows), {"de", "en", "zh"})
        for row in rows.values():
            self.assertEqual(row["before"]["items_judged"], 5)  # the labelled third of 15
            self.assertGreater(row["after"]["items_judged"], row["before"]["items_judged"])
            self.assertGreater(row["after"]["items"], row["before"]["items"])
            self.assertIsNotNone(row["before"]["ci_width"])
        lead = get_user_model().objects.get(username="lead")
        self.client.force_login(lead)
        page = self.client.get(reverse("annotation:progress", args=[self.project.slug]))
        self.assertContains(page, "Before and after active-learning round")

    def test_a_second_run_runs_no_second_round(self) -> None:
        from active_learning.models import SelectionRound

        before = table_counts()
        with mock.patch("active_learning.management.commands.demo_al_round.MIN_POOL", 30):
            call_command("demo", "--limit", "15", "--password", PASSWORD, stdout=StringIO())
        self.assertEqual(SelectionRound.objects.filter(project=self.project).count(), 1)
        self.assertEqual(table_counts(), before)
