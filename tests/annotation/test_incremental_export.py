"""Incremental preference pulls lose nothing: a property test over random interleavings.

A pipeline pulls `preferences?since=C` and then `retractions?since=C` with the same
filters, deletes the retracted keys, upserts the lines by `item_id` and keeps the lines'
cursor. Whatever happens between pulls — queue judgments, historical imports, revisions,
adjudications, gold promotions — its copy must equal a full pull after every pull. Runs
on SQLite and on PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import json
import random
from typing import Any

from annotation.adjudication import adjudication_decide, adjudication_sweep
from annotation.exports import preference_export, preference_retractions
from annotation.gold import gold_promote
from annotation.models import FinalLabel, Item, ItemStatus, Judgment, TaskType
from annotation.qualification import evaluator_language_add, qualification_grant
from annotation.queue import item_claim_next, judgment_revise, judgment_submit
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import ProjectFactory, UserFactory


class Consumer:
    """A pipeline's copy of the data: lines by item_id."""

    def __init__(self, project: Any, filters: dict[str, Any]) -> None:
        self.project, self.filters = project, filters
        self.lines: dict[str, dict[str, Any]] = {}
        self.cursor: str | None = None

    def pull(self) -> None:
        export = preference_export(project=self.project, since=self.cursor, **self.filters)
        lines = list(export.rows)
        retracted = [
            r["item_id"]
            for r in preference_retractions(
                project=self.project, since=self.cursor, **self.filters
            ).rows
        ]
        for key in retracted:
            self.lines.pop(key, None)
        for line in lines:
            self.lines[line["item_id"]] = line
        self.cursor = export.cursor

    def full(self) -> dict[str, dict[str, Any]]:
        return {
            line["item_id"]: line
            for line in preference_export(project=self.project, **self.filters).rows
        }


def _comparable(lines: dict[str, dict[str, Any]]) -> str:
    return json.dumps(lines, sort_keys=True, default=str)


class IncrementalPullTests(ApiTestCase):
    def _world(
        self, task_type: str, *, overlap: int, items: int, seed: int, schema: dict | None = None
    ) -> Any:
        project = ProjectFactory(
            slug=f"inc-{task_type}-{seed}",
            task_type=task_type,
            languages=["de", "sw"],
            overlap=overlap,
            **({"schema": schema} if schema else {}),
        )
        project.leads.add(self.lead)
        if task_type == TaskType.RATING:
            project.adjudication_rating_spread = 2
            project.save(update_fields=["adjudication_rating_spread"])
        if task_type == TaskType.PAIRWISE:
            lines = [
                {
                    "external_id": f"x{n}",
                    "language": "de" if n % 4 else "sw",
                    "prompt": f"Frage {n % 9}",
                    "response_a": f"A{n}",
                    "response_b": f"B{n}",
                    "model_a": "m1",
                    "model_b": "m2",
                }
                for n in range(items)
            ]
        else:
            lines = [
                {
                    "external_id": f"x{n}",
                    "language": "de" if n % 4 else "sw",
                    "prompt": f"Frage {n % 7}",
                    "prompt_id": f"q{n % 7}",
                    "response": f"Antwort {n}",
                    "model": f"m{n % 3}",
                }
                for n in range(items)
            ]
        import_items(project, lines)
        self.evaluators = [UserFactory() for _ in range(4)]
        for user in self.evaluators:
            for language in (self.de, self.sw):
                evaluator_language_add(user=user, language=language)
                qualification_grant(
                    project=project, evaluator=user, language=language, actor=self.lead
                )
        return project

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        from tests.factories import language

        cls.sw = language("sw")

    def _value(self, rng: random.Random, task_type: str) -> dict[str, Any]:
        if task_type == TaskType.PAIRWISE:
            choice = rng.choice(("a", "a", "b", "b", "tie", "both_bad"))
            return (
                {"choice": choice, "strength": rng.choice((1, 2))}
                if choice in "ab"
                else {"choice": choice}
            )
        return {"score": rng.choice((1, 2, 3, 4, 5))}

    def _step(self, rng: random.Random, project: Any, n_items: int) -> str:
        kind = rng.choice(
            ("submit", "submit", "submit", "historical", "revise", "adjudicate", "gold")
        )
        if kind == "submit":
            user = rng.choice(self.evaluators)
            assignment = item_claim_next(evaluator=user, project=project)
            if assignment is not None:
                judgment_submit(
                    assignment=assignment, evaluator=user, value=self._value(rng, project.task_type)
                )
        elif kind == "historical":
            self._rater += 1
            item = Item.objects.filter(project=project, is_gold=False).order_by("?").first()
            import_judgments(
                project,
                [
                    {
                        "item_external_id": item.external_id,
                        "rater": f"r{self._rater}",
                        "value": self._value(rng, project.task_type),
                    }
                ],
            )
        elif kind == "revise":
            judgment = (
                Judgment.objects.filter(
                    item__project=project, is_current=True, evaluator__isnull=False
                )
                .exclude(item__status=ItemStatus.FINAL)
                .order_by("?")
                .first()
            )
            if judgment is not None:
                judgment_revise(
                    judgment=judgment,
                    evaluator=judgment.evaluator,
                    value=self._value(rng, project.task_type),
                )
                adjudication_sweep(project=project, actor=self.lead)
        elif kind == "adjudicate":
            item = (
                Item.objects.filter(project=project, status=ItemStatus.ADJUDICATION)
                .order_by("?")
                .first()
            )
            if item is not None:
                adjudication_decide(
                    item=item,
                    user=self.lead,
                    value=self._value(rng, project.task_type),
                    reason="decided",
                )
        elif kind == "gold":
            item = (
                Item.objects.filter(project=project, status=ItemStatus.FINAL, is_gold=False)
                .order_by("?")
                .first()
            )
            if item is not None:
                gold_promote(item=item, explanation="a clear case", actor=self.lead)
        return kind

    def _run(
        self,
        *,
        task_type: str,
        overlap: int,
        filters_list: list[dict[str, Any]],
        seed: int,
        schema: dict | None = None,
    ) -> None:
        rng = random.Random(seed)
        n_items = 24
        project = self._world(task_type, overlap=overlap, items=n_items, seed=seed, schema=schema)
        self._rater = 0
        consumers = [Consumer(project, filters) for filters in filters_list]
        seen_kinds: set[str] = set()
        pulls_with_retractions = 0
        for step in range(140):
            seen_kinds.add(self._step(rng, project, n_items))
            if rng.random() < 0.25 or step == 139:
                for consumer in consumers:
                    before = set(consumer.lines)
                    consumer.pull()
                    pulls_with_retractions += bool(before - set(consumer.lines))
                    self.assertEqual(
                        _comparable(consumer.lines),
                        _comparable(consumer.full()),
                        f"step {step}, filters {consumer.filters}",
                    )
        self.assertGreater(sum(len(c.lines) for c in consumers), 0)
        self.assertTrue({"submit", "historical", "revise", "adjudicate"} <= seen_kinds, seen_kinds)
        self.assertGreater(
            Judgment.objects.filter(item__project=project, is_current=False).count(), 0
        )
        self.assertGreater(FinalLabel.objects.filter(item__project=project).count(), 0)
        self.assertGreater(pulls_with_retractions, 0)

    def test_pairwise_pulls_equal_a_full_pull_under_every_filter(self):
        for seed in (1, 2):
            with self.subTest(seed=seed):
                self._run(
                    task_type=TaskType.PAIRWISE,
                    overlap=3,
                    seed=seed,
                    filters_list=[
                        {},
                        {"exclude_ties": False, "min_agreement": 0.6},
                        {"language": "sw", "style": "conversational"},
                        {"split": "test", "test_fraction": 0.5, "margin": "scaled"},
                    ],
                )

    def test_rating_pulls_equal_a_full_pull_in_every_shape(self):
        schema = {"scale": {"min": 1, "max": 5}}
        for seed in (3, 4):
            with self.subTest(seed=seed):
                self._run(
                    task_type=TaskType.RATING,
                    overlap=2,
                    seed=seed,
                    schema=schema,
                    filters_list=[
                        {},
                        {"pairs": "all", "min_gap": 1},
                        {"shape": "unpaired", "min_agreement": 0.5},
                        {"pairs": "all", "exclude_ties": False, "language": "de"},
                    ],
                )
