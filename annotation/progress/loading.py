"""The progress report's data, read in bulk as arrays.

A report over a million judgments cannot afford a Python object per judgment: the ORM's
row tuples, a decoded JSON value, a timestamp and a pandas object row each cost more than
the whole bootstrap. So the judgments and their items are read as columns
(`annotation.progress.columns`), with the database extracting what each value holds (a
score, a choice), and every text column (model, guideline version, domain) becomes
integer codes with one name list. Two queries, of a size that does not grow with the
project; they are the ORM's, so they filter as the rest of Parity does.

Each item's quality score is the label rule's (`annotation.labels.label_scores`), with its
final label in place of its judgments.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Case, F, FloatField, Func, IntegerField, QuerySet, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from annotation.agreement.loading import _Judgments, _Scheme
from annotation.labels import CHOICES, LabelRule, item_label, label_score, label_scores
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    EvaluatorLanguage,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Language,
    Project,
    Selection,
    TaskType,
)
from annotation.progress.columns import code_of, query_columns, recode, text_codes
from annotation.progress.options import NONE_KEY

# An item's language check: never run, found another language inside, or one language.
SWITCHED = ("unchecked", "code_switched", "single_language")


def _period_first_day(period: str, year: int, number: int) -> str:
    """ISO date of the first day of an ISO week (Monday) or of a month."""
    if period == "month":
        return datetime.date(year, number, 1).isoformat()
    return datetime.date.fromisocalendar(year, number, 1).isoformat()


@dataclass
class ProgressData:
    """A project's counted judgments and their items, as arrays.

    Items (position i, sorted by id) are the items with at least one counted current
    judgment; `language[i]` indexes `tags` (the project's languages, sorted; −1 for an
    item of a language the project no longer has, whose tag is `item_tag[i]`). Model
    columns are codes into `models` ("" as the task's default: NONE_KEY for `model`,
    "A" / "B" for the sides). `score[i]` is the item's quality score under the label rule.
    Judgments (position j, in no particular order) carry their item's position."""

    project: Project
    rule: LabelRule
    tags: list[str]
    item_id: np.ndarray
    language: np.ndarray
    item_tag: np.ndarray
    models: list[str]
    model: np.ndarray
    model_a: np.ndarray
    model_b: np.ndarray
    uncertainty: np.ndarray
    attributes: dict[str, tuple[np.ndarray, list[str]]]  # domain, task, code_switched
    prompt_id: np.ndarray | None
    score: np.ndarray
    vote_score: np.ndarray  # the score of the judgments alone (no final label)
    # The final labels: their items' positions, scores and times (seconds since the epoch).
    final_item: np.ndarray
    final_score: np.ndarray
    final_created: np.ndarray
    j_item: np.ndarray
    j_evaluator: np.ndarray
    j_guideline: np.ndarray
    guidelines: list[str]
    j_created: np.ndarray | None  # seconds since the epoch
    judgments: _Judgments  # for agreement: items and encoded values
    j_votes: dict[str, Any]  # the votes label_scores takes (score, choice or labels)
    # Per language tag, the items (judged or not, gold left out) awaiting adjudication
    # and in the pool.
    status_counts: dict[str, dict[str, int]]

    @property
    def n_items(self) -> int:
        return len(self.item_id)

    def _created(self) -> np.ndarray:
        if self.j_created is None:
            raise ValueError("loaded without judgment times")
        return self.j_created

    def item_periods(self, period: str) -> tuple[np.ndarray, list[str]]:
        """Each item's period — the week (Monday) or month of its latest counted judgment,
        in the current time zone — as codes into a sorted list of ISO dates."""
        created = self._created()
        if not self.n_items:
            return np.zeros(0, dtype=np.int64), []
        latest = np.full(self.n_items, -np.inf)
        np.maximum.at(latest, self.j_item, created)
        when = pd.to_datetime(latest, unit="s", utc=True).tz_convert(
            timezone.get_current_timezone_name()
        )
        if period == "month":
            year, number = np.asarray(when.year), np.asarray(when.month)
        else:
            iso = when.isocalendar()
            year, number = iso["year"].to_numpy(), iso["week"].to_numpy()
        pair = year.astype(np.int64) * 100 + number.astype(np.int64)
        distinct, codes = np.unique(pair, return_inverse=True)
        names = [_period_first_day(period, int(p) // 100, int(p) % 100) for p in distinct]
        return codes.reshape(-1), names

    def votes_of(self, judgments: np.ndarray) -> dict[str, Any]:
        """The votes (as label_scores takes them) of these judgments (positions)."""
        return {
            k: (v[judgments] if isinstance(v, np.ndarray) else [v[j] for j in judgments])
            for k, v in self.j_votes.items()
        }

    def judged_at(self, when: float) -> np.ndarray:
        """Which items had a counted judgment before `when` (seconds since the epoch)."""
        created = self._created()
        judged = np.zeros(self.n_items, dtype=bool)
        judged[self.j_item[created < when]] = True
        return judged

    def scores_at(self, when: float) -> np.ndarray:
        """Each item's quality score from what was there at `when` (seconds since the
        epoch): its judgments and final label from before then; NaN for an item not yet
        judged."""
        earlier = np.flatnonzero(self._created() < when)
        score = label_scores(
            rule=self.rule,
            item=self.j_item[earlier],
            n_items=self.n_items,
            **self.votes_of(earlier),
        )
        decided = self.final_created < when
        score[self.final_item[decided]] = self.final_score[decided]
        return score


# ---------------------------------------------------------------------------------------
# The two reads
# ---------------------------------------------------------------------------------------


def _judgment_query(project: Project, language: str | None) -> QuerySet[Any]:
    qs = Judgment.objects.filter(
        item__project=project, is_current=True, kind__in=list(COUNTED_JUDGMENT_KINDS)
    )
    if language:
        qs = qs.filter(item__language__tag=language)
    return qs


def _judgment_columns(
    project: Project, language: str | None, *, with_created: bool
) -> pd.DataFrame:
    """The counted current judgments: the database extracts what the value holds, choices
    as codes."""
    task = project.task_type
    parts: dict[str, Any] = {
        "_evaluator": Coalesce(F("evaluator_id"), Value(-1), output_field=IntegerField())
    }
    text = {"guideline_version"}
    if task == TaskType.RATING:
        parts["_score"] = Cast(KT("value__score"), FloatField())
    elif task == TaskType.PAIRWISE:
        parts["_choice"] = code_of(KT("value__choice"), CHOICES)
        parts["_strength"] = Coalesce(
            Cast(KT("value__strength"), IntegerField()), Value(1), output_field=IntegerField()
        )
    else:
        parts["_labels"] = KT("value__labels")
        text.add("_labels")
    if with_created:
        if connection.vendor == "postgresql":
            # date_part gives a double; EXTRACT a numeric, several times dearer to format.
            parts["_created"] = Func(
                Value("epoch"), F("created_at"), function="date_part", output_field=FloatField()
            )
        else:
            text.add("created_at")
    names = ["item_id", "guideline_version", *parts]
    if with_created and connection.vendor != "postgresql":
        names.append("created_at")
    qs = _judgment_query(project, language).annotate(**parts).values_list(*names)
    return query_columns(qs, names, text)


def _item_columns(project: Project, language: str | None, *, with_prompt: bool) -> pd.DataFrame:
    """Every item of the project (of the language), flags and states as small codes, text
    only where it is free-form. Those without judgments are dropped later: asking the
    database for only the judged ones (EXISTS) costs an index probe per item, several
    times the scan."""
    item_parts: dict[str, Any] = {
        "_uncertain": Case(
            When(selection=Selection.UNCERTAINTY, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ),
        # 0 unchecked, 1 code-switched, 2 one language (SWITCHED's order).
        "_switched": Case(
            When(language_check__isnull=True, then=Value(0)),
            When(language_check__has_key="mixed", then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        ),
        # 1 awaiting adjudication, 2 in the pool; gold items are no backlog.
        "_backlog": Case(
            When(is_gold=True, then=Value(0)),
            When(status=ItemStatus.ADJUDICATION, then=Value(1)),
            When(status=ItemStatus.POOL, then=Value(2)),
            default=Value(0),
            output_field=IntegerField(),
        ),
        "_domain": KT("metadata__domain"),
        "_task": KT("metadata__task"),
    }
    model_fields = ["model_a", "model_b"] if project.task_type == TaskType.PAIRWISE else ["model"]
    item_names = ["pk", "language_id", *model_fields, *item_parts]
    item_text = {*model_fields, "_domain", "_task"}
    if with_prompt:
        item_names.append("prompt_id")
        item_text.add("prompt_id")
    items_qs = Item.objects.filter(project=project)
    if language:
        items_qs = items_qs.filter(language__tag=language)
    return query_columns(
        items_qs.annotate(**item_parts).values_list(*item_names), item_names, item_text
    )


def _backlog_counts(
    items: pd.DataFrame, language_tags: dict[int, str]
) -> dict[str, dict[str, int]]:
    """The backlog per language tag, from the items' read."""
    status_counts: dict[str, dict[str, int]] = {}
    backlog = items["_backlog"].to_numpy()
    for code, key in ((1, "adjudication"), (2, "pool")):
        for language_id, count in items["language_id"][backlog == code].value_counts().items():
            tag = language_tags.get(int(language_id), "")
            status_counts.setdefault(tag, {"adjudication": 0, "pool": 0})[key] = int(count)
    return status_counts


def _judged_join(
    items: pd.DataFrame, judgments: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The judged items (sorted by id), the judgments whose item the second read saw (one
    written in between is left out), and each judgment's item position."""
    j_item_id = judgments["item_id"].to_numpy(dtype=np.int64)
    judged = np.isin(items["pk"].to_numpy(dtype=np.int64), j_item_id)
    items = items[judged].sort_values("pk", kind="stable").reset_index(drop=True)
    item_id = items["pk"].to_numpy(dtype=np.int64)
    n_items = len(item_id)
    j_item = np.searchsorted(item_id, j_item_id)
    known = (j_item < n_items) & (item_id[np.minimum(j_item, max(n_items - 1, 0))] == j_item_id)
    if n_items == 0:
        known = np.zeros(len(j_item_id), dtype=bool)
    if not known.all():
        judgments = judgments[known].reset_index(drop=True)
        j_item = j_item[known]
    return items, judgments, j_item


def _item_languages(
    items: pd.DataFrame, tags: list[str], language_tags: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's tag and its code into `tags`: per distinct language, spread to the items."""
    language_ids, of_item = np.unique(
        items["language_id"].to_numpy(dtype=np.int64), return_inverse=True
    )
    distinct_tags = [language_tags.get(int(x), "") for x in language_ids]
    item_tag = np.array(distinct_tags, dtype=object)[of_item.reshape(-1)]
    language_code = (
        pd.Index(tags).get_indexer(distinct_tags)[of_item.reshape(-1)]
        if len(items)
        else np.zeros(0, dtype=np.int64)
    )
    return item_tag, np.asarray(language_code, dtype=np.int64)


def _item_models(
    items: pd.DataFrame, task: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Model names, one list for the model and both sides, and each item's codes:
    (models, model, model_a, model_b)."""
    zeros = np.zeros(len(items), dtype=np.int64)
    if task == TaskType.PAIRWISE:
        a_codes, a_names = text_codes(items["model_a"], empty="A")
        b_codes, b_names = text_codes(items["model_b"], empty="B")
        models = sorted(set(a_names) | set(b_names))
        return models, zeros, recode(a_codes, a_names, models), recode(b_codes, b_names, models)
    m_codes, models = text_codes(items["model"], empty=NONE_KEY)
    return models, m_codes, zeros, zeros


def _item_attributes(items: pd.DataFrame) -> dict[str, tuple[np.ndarray, list[str]]]:
    present, switched = np.unique(items["_switched"].to_numpy(dtype=np.int64), return_inverse=True)
    return {
        "domain": text_codes(items["_domain"], empty=NONE_KEY),
        "task": text_codes(items["_task"], empty=NONE_KEY),
        # Only the states the items are in, in SWITCHED's order.
        "code_switched": (switched.reshape(-1), [SWITCHED[k] for k in present]),
    }


def _votes(project: Project, judgments: pd.DataFrame) -> tuple[dict[str, Any], np.ndarray]:
    """The votes label_scores takes, and the values agreement encodes."""
    task = project.task_type
    scheme = _Scheme.of(project, project.agreement_level)
    votes: dict[str, Any] = {}
    if task == TaskType.RATING:
        votes["score"] = judgments["_score"].to_numpy(dtype=np.float64)
        return votes, votes["score"].astype(np.int64) - int(scheme.domain[0])
    if task == TaskType.PAIRWISE:
        choice = judgments["_choice"].to_numpy(dtype=np.int64)
        votes["choice"] = choice
        strength = judgments["_strength"].to_numpy(dtype=np.float64)
        if scheme.level == "nominal":
            table = np.array([scheme.domain.index(c) for c in CHOICES], dtype=np.int64)
            return votes, table[np.maximum(choice, 0)]
        graded = np.where(choice == 0, strength, np.where(choice == 1, -strength, 0))
        return votes, (graded - scheme.domain[0]).astype(np.int64)
    raw = judgments["_labels"].astype(str).to_numpy()
    votes["labels"] = [json.loads(x) if x else [] for x in raw]
    return votes, scheme.encode([{"labels": labels} for labels in votes["labels"]])


def _final_labels(
    project: Project, language: str | None, rule: LabelRule, item_id: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The final labels of the judged items: positions, scores and times."""
    finals = FinalLabel.objects.filter(item__project=project)
    if language:
        finals = finals.filter(item__language__tag=language)
    n_items = len(item_id)
    final_rows = []
    for pk, value, at in finals.values_list("item_id", "value", "created_at"):
        position = int(np.searchsorted(item_id, pk))
        if position < n_items and item_id[position] == pk:
            label = item_label(rule=rule, votes=[], final=value)
            result = label_score(rule=rule, label=label) if label is not None else None
            final_rows.append((position, np.nan if result is None else result, at.timestamp()))
    return (
        np.array([r[0] for r in final_rows], dtype=np.int64),
        np.array([r[1] for r in final_rows], dtype=np.float64),
        np.array([r[2] for r in final_rows], dtype=np.float64),
    )


def _judgment_times(judgments: pd.DataFrame, *, with_created: bool) -> np.ndarray | None:
    """Each judgment's time in seconds since the epoch (when asked for)."""
    if not with_created:
        return None
    if "_created" in judgments:
        return judgments["_created"].to_numpy(dtype=np.float64)
    stamps = pd.to_datetime(judgments["created_at"].astype(str), utc=True, format="ISO8601")
    return stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9


def progress_data_load(
    *,
    project: Project,
    language: str | None = None,
    with_created: bool = False,
    with_prompt: bool = False,
) -> ProgressData:
    """The project's counted current judgments (of one language when given) and their
    items, as arrays (see ProgressData)."""
    rule = LabelRule.of(project)
    tags = sorted(project.languages.values_list("tag", flat=True))
    judgments = _judgment_columns(project, language, with_created=with_created)
    items = _item_columns(project, language, with_prompt=with_prompt)
    # Every language the database knows (a few hundred rows at most): asking for only the
    # items' would send their ids as parameters.
    language_tags = dict(Language.objects.values_list("pk", "tag"))
    status_counts = _backlog_counts(items, language_tags)
    items, judgments, j_item = _judged_join(items, judgments)
    item_id = items["pk"].to_numpy(dtype=np.int64)
    item_tag, language_code = _item_languages(items, tags, language_tags)
    models, model, model_a, model_b = _item_models(items, project.task_type)
    votes, encoded = _votes(project, judgments)
    vote_score = label_scores(rule=rule, item=j_item, n_items=len(item_id), **votes)
    final_item, final_score, final_created = _final_labels(project, language, rule, item_id)
    score = vote_score.copy()
    score[final_item] = final_score
    g_codes, g_names = text_codes(judgments["guideline_version"], empty=NONE_KEY)
    scheme = _Scheme.of(project, project.agreement_level)
    return ProgressData(
        project=project,
        rule=rule,
        tags=tags,
        item_id=item_id,
        language=language_code,
        item_tag=item_tag,
        models=models,
        model=model,
        model_a=model_a,
        model_b=model_b,
        uncertainty=items["_uncertain"].to_numpy() == 1,
        attributes=_item_attributes(items),
        prompt_id=items["prompt_id"].astype(str).to_numpy() if with_prompt else None,
        score=score,
        vote_score=vote_score,
        final_item=final_item,
        final_score=final_score,
        final_created=final_created,
        j_item=j_item,
        j_evaluator=judgments["_evaluator"].to_numpy(dtype=np.int64),
        j_guideline=g_codes,
        guidelines=g_names,
        j_created=_judgment_times(judgments, with_created=with_created),
        judgments=_Judgments(pd.DataFrame({"item": item_id[j_item]}), {}, {scheme: encoded}),
        j_votes=votes,
        status_counts=status_counts,
    )


def judgment_dialects(data: ProgressData) -> tuple[np.ndarray, list[str]]:
    """Each judgment's evaluator dialect or region for its item's language, as codes into
    a sorted name list (NONE_KEY for external raters and evaluators who gave none)."""
    evaluators = np.unique(data.j_evaluator[data.j_evaluator >= 0])
    lookup = {
        (user, tag): dialect
        for user, tag, dialect in EvaluatorLanguage.objects.filter(
            profile__user_id__in=[int(x) for x in evaluators]
        )
        .exclude(dialect="")
        .values_list("profile__user_id", "language__tag", "dialect")
    }
    names = sorted({NONE_KEY, *lookup.values()})
    if not lookup:
        return np.full(len(data.j_item), names.index(NONE_KEY), dtype=np.int64), names
    # One lookup per distinct (evaluator, item language), not per judgment.
    tag_codes, tag_names = pd.factorize(data.item_tag[data.j_item])
    width = max(1, len(tag_names))
    pair = data.j_evaluator * width + tag_codes
    distinct, inverse = np.unique(pair, return_inverse=True)
    index = {name: k for k, name in enumerate(names)}
    per_pair = np.array(
        [
            index[lookup.get((int(p) // width, tag_names[int(p) % width]), NONE_KEY)]
            if p >= 0
            else index[NONE_KEY]
            for p in distinct
        ],
        dtype=np.int64,
    )
    return per_pair[inverse.reshape(-1)], names
