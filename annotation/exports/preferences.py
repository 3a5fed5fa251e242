"""Preference data: the lines a training pipeline pulls, and the retractions of a `since` pull.

Shapes (TRL's dataset formats):
- `pairs`: {prompt, chosen, rejected, …}. Pairwise projects give one line per item;
  rating projects pair the responses to one prompt (same `prompt_id` and language):
  best against worst (`pairs=best_worst`), or every two responses whose aggregated
  scores differ by at least `min_gap` (`pairs=all`).
- `unpaired` (rating projects): {prompt, completion, label, …}, one line per item, `label`
  true when the aggregated score is at least `threshold` (default: the scale's midpoint).

Every line has an `item_id` that is unique within the project: the upsert key of a
pipeline that pulls incrementally. Pairwise and unpaired lines: the item's external id;
rating pairs: "<language>/<prompt_id>" (best_worst) or "<language>/<prompt_id>/<id>/<id>"
with the two responses' external ids in sorted order (all).

Labels come from the one label rule (annotation.labels). No column is named `margin`
unless `margin="scaled"` asks for one (then in [0, 1]): TRL's RewardTrainer applies a
`margin` column as-is, so raw score points would swamp its loss. The raw difference is
`gap`: the judged strength (1 or 2; 0 for a tie) of a pairwise line, the difference of
aggregated scores of a rating pair.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import pyarrow as pa
from django.core.exceptions import ValidationError
from django.utils import timezone

from annotation.agreement import dawid_skene_choices
from annotation.audit import audit_record
from annotation.exports.marks import (
    export_cursor_decode,
    export_cursor_encode,
    export_marks_advance,
    row_settled,
)
from annotation.exports.rows import (
    ExportRow,
    Marked,
    closed_after,
    in_transaction,
    json_value,
    marked_rows,
)
from annotation.labels import ItemLabel, LabelRule, item_label
from annotation.languages import language_tag_normalize
from annotation.models import ApiToken, Language, Project, TaskType
from annotation.types import Actor

METHODS = ("majority", "dawid_skene")
STYLES = ("standard", "conversational")
SHAPES = ("pairs", "unpaired")
PAIRINGS = ("best_worst", "all")
SPLITS = ("train", "test")
MARGINS = ("scaled",)
PREFERENCE_FORMATS = ("jsonl", "parquet")
DEFAULT_PROMPT_TEMPLATE = "{prompt}\n"
DEFAULT_TEST_FRACTION = 0.1
MAX_TEMPLATE_CHARS = 1000

# The line of each shape, in column order. `prompt`, `chosen`, `rejected` and `completion`
# are strings in the standard style and role/content message lists in the conversational
# one; `margin` comes only with margin="scaled", the signal columns only with signals.
PAIR_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "language",
    "item_id",
    "n_judgments",
    "agreement",
    "guideline_version",
    "model_chosen",
    "model_rejected",
    "gap",
    "tie",
    "label_source",
    "chosen_item_id",
    "rejected_item_id",
)
PAIR_SIGNAL_COLUMNS = (
    "reward_chosen",
    "reward_rejected",
    "mean_logprob_chosen",
    "mean_logprob_rejected",
)
UNPAIRED_COLUMNS = (
    "prompt",
    "completion",
    "label",
    "language",
    "item_id",
    "n_judgments",
    "agreement",
    "guideline_version",
    "model",
    "score",
    "label_source",
)
UNPAIRED_SIGNAL_COLUMNS = ("reward", "mean_logprob")
RETRACTION_COLUMNS = ("item_id",)


@dataclass(frozen=True)
class PreferenceOptions:
    """A pull's options, checked (see `preference_options`)."""

    method: str = "majority"
    style: str = "standard"
    shape: str = "pairs"
    pairs: str = "best_worst"
    language: Language | None = None
    min_agreement: float | None = None
    exclude_ties: bool = True
    min_gap: float = 0.0
    threshold: float | None = None
    split: str | None = None
    test_fraction: float = DEFAULT_TEST_FRACTION
    margin: str | None = None
    signals: bool = False
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE

    def columns(self) -> tuple[str, ...]:
        if self.shape == "unpaired":
            return UNPAIRED_COLUMNS + (UNPAIRED_SIGNAL_COLUMNS if self.signals else ())
        return (
            PAIR_COLUMNS
            + (("margin",) if self.margin else ())
            + (PAIR_SIGNAL_COLUMNS if self.signals else ())
        )


def _one_of(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValidationError({field: [f"must be one of {', '.join(allowed)}"]})


def _number(
    field: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError({field: ["must be a finite number"]})
    value = float(value)
    if low is not None and (value < low or (open_low and value == low)):
        raise ValidationError({field: [f"must be {'above' if open_low else 'at least'} {low:g}"]})
    if high is not None and (value > high or (open_high and value == high)):
        raise ValidationError({field: [f"must be {'below' if open_high else 'at most'} {high:g}"]})
    return value


def project_language(
    *, project: Project, tag: str | None, field: str = "language"
) -> Language | None:
    if tag in (None, ""):
        return None
    try:
        normal = language_tag_normalize(tag)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None
    language = project.languages.filter(tag=normal).first()
    if language is None:
        raise ValidationError({field: [f"{normal!r} is not a language of project {project.slug}"]})
    return language


def preference_options(
    *,
    project: Project,
    method: str = "majority",
    style: str = "standard",
    shape: str = "pairs",
    pairs: str = "best_worst",
    language: str | None = None,
    min_agreement: float | None = None,
    exclude_ties: bool = True,
    min_gap: float | None = None,
    threshold: float | None = None,
    split: str | None = None,
    test_fraction: float | None = None,
    margin: str | None = None,
    signals: bool = False,
    prompt_template: str | None = None,
) -> PreferenceOptions:
    """The options of a pull, checked against the project; ValidationError by field
    (checked in this order, so the first bad field is the one reported)."""
    for field, value, allowed in (
        ("method", method, METHODS),
        ("style", style, STYLES),
        ("shape", shape, SHAPES),
        ("pairs", pairs, PAIRINGS),
    ):
        _one_of(field, value, allowed)
    _task_type_check(project, method=method, shape=shape, pairs=pairs)
    gap, cut = _rating_cuts(project, shape=shape, min_gap=min_gap, threshold=threshold)
    split, fraction = _split_check(split, test_fraction)
    if margin not in (None, ""):
        _one_of("margin", margin, MARGINS)
    else:
        margin = None
    template = _prompt_template_check(prompt_template, style=style)
    return PreferenceOptions(
        method=method,
        style=style,
        shape=shape,
        pairs=pairs,
        language=project_language(project=project, tag=language),
        min_agreement=_number("min_agreement", min_agreement, low=0.0, high=1.0),
        exclude_ties=bool(exclude_ties),
        min_gap=gap or 0.0,
        threshold=cut,
        split=split,
        test_fraction=fraction if fraction is not None else DEFAULT_TEST_FRACTION,
        margin=margin,
        signals=bool(signals),
        prompt_template=template,
    )


def _task_type_check(project: Project, *, method: str, shape: str, pairs: str) -> None:
    """What the project's task type rules out: preference lines for labels projects, and
    the options of one task type asked of the other."""
    if project.task_type == TaskType.LABELS:
        raise ValidationError(
            "a labels project has no preference pairs; use the judgment export (export/judgments/)"
        )
    rating = project.task_type == TaskType.RATING
    if method == "dawid_skene" and rating:
        raise ValidationError(
            {
                "method": [
                    "ratings aggregate by the median (majority); dawid_skene is for pairwise choices"
                ]
            }
        )
    if shape == "unpaired" and not rating:
        raise ValidationError(
            {
                "shape": [
                    "unpaired lines are for rating projects; a pairwise project's lines are "
                    "pairs (TRL's unpair_preference_dataset turns them into unpaired lines)"
                ]
            }
        )
    if pairs == "all" and not rating:
        raise ValidationError(
            {
                "pairs": [
                    "pairs=all pairs the responses to one prompt in a rating project; a pairwise "
                    "item is one pair already"
                ]
            }
        )


def _rating_cuts(
    project: Project, *, shape: str, min_gap: float | None, threshold: float | None
) -> tuple[float | None, float | None]:
    """A rating pair's smallest score difference, and the rating from which an unpaired
    completion is good (the scale's middle unless asked)."""
    gap = _number("min_gap", min_gap, low=0.0)
    if gap is not None and project.task_type != TaskType.RATING:
        raise ValidationError(
            {"min_gap": ["is for rating projects (the score difference of a pair)"]}
        )
    cut = _number("threshold", threshold)
    if cut is not None and shape != "unpaired":
        raise ValidationError(
            {"threshold": ["is for shape=unpaired (a rating at or above it is a good completion)"]}
        )
    if cut is None and shape == "unpaired":
        low, high = _scale(project)
        cut = (low + high) / 2
    return gap, cut


def _split_check(split: str | None, test_fraction: float | None) -> tuple[str | None, float | None]:
    if split is not None and split != "":
        _one_of("split", split, SPLITS)
    else:
        split = None
    fraction = _number(
        "test_fraction", test_fraction, low=0.0, high=1.0, open_low=True, open_high=True
    )
    if fraction is not None and split is None:
        raise ValidationError({"test_fraction": ["goes with split=train or split=test"]})
    return split, fraction


def _prompt_template_check(prompt_template: str | None, *, style: str) -> str:
    template = DEFAULT_PROMPT_TEMPLATE if prompt_template is None else prompt_template
    if not isinstance(template, str) or template.count("{prompt}") != 1:
        raise ValidationError({"prompt_template": ["must contain {prompt} exactly once"]})
    if len(template) > MAX_TEMPLATE_CHARS or "\x00" in template:
        raise ValidationError(
            {"prompt_template": [f"must be text of at most {MAX_TEMPLATE_CHARS} characters"]}
        )
    if prompt_template is not None and style == "conversational":
        raise ValidationError(
            {
                "prompt_template": [
                    "is for style=standard; conversational lines keep the turns apart"
                ]
            }
        )
    return template


def _scale(project: Project) -> tuple[float, float]:
    scale = (project.schema or {}).get("scale") or {}
    return float(scale.get("min", 1)), float(scale.get("max", 5))


@dataclass
class PreferenceExport:
    """A started pull: `cursor` goes into the next pull's `since`; `rows` streams the lines
    (`columns` in order; `schema` for Parquet)."""

    cursor: str
    rows: Generator[dict[str, Any], None, None]
    style: str
    columns: tuple[str, ...]
    schema: pa.Schema


def preference_export(
    *,
    project: Project,
    since: str | None = None,
    actor: Actor = None,
    token: ApiToken | None = None,
    **options: Any,
) -> PreferenceExport:
    """Start a pull of preference lines: the current line of every item marked after
    `since` (all of them without it) that qualifies under the options. ValidationError (by
    field) for bad options, before any write."""
    opts = preference_options(project=project, **options)
    marked = _marks(
        project=project, since=since, opts=opts, verb="export.preferences", actor=actor, token=token
    )
    return PreferenceExport(
        cursor=export_cursor_encode(project=project, seq=marked.upto),
        rows=_handed_out(project, in_transaction(_lines(marked, opts))),
        style=opts.style,
        columns=opts.columns(),
        schema=preference_arrow_schema(opts),
    )


def preference_retractions(
    *,
    project: Project,
    since: str | None = None,
    actor: Actor = None,
    token: ApiToken | None = None,
    **options: Any,
) -> PreferenceExport:
    """Start a pull of retractions: {"item_id"} for every line key of an item marked after
    `since` that has no line under the same options now (a retraction of a line the
    consumer never had is harmless)."""
    opts = preference_options(project=project, **options)
    marked = _marks(
        project=project, since=since, opts=opts, verb="export.retractions", actor=actor, token=token
    )

    def retracted() -> Iterator[dict[str, Any]]:
        # Which items have a line decides a retraction, not what the line says: no texts
        # (the prompt only when a split hashes it), no signals.
        with closing(_units(marked, opts, texts=False)) as units:
            for keys, lines in units:
                kept = {line["item_id"] for line in lines}
                for key in keys:
                    if key not in kept:
                        yield {"item_id": key}

    return PreferenceExport(
        cursor=export_cursor_encode(project=project, seq=marked.upto),
        rows=in_transaction(retracted()),
        style=opts.style,
        columns=RETRACTION_COLUMNS,
        schema=pa.schema([("item_id", pa.string())]),
    )


def _handed_out(project: Project, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The lines, after recording when they started going out (`Project.export_handed_at`,
    which closes the undo of what was judged before): on the first line asked for, before
    the stream's own transaction opens, so the stream holds no lock on the project."""
    Project.objects.filter(pk=project.pk).update(export_handed_at=timezone.now())
    with closed_after(rows):
        yield from rows


def _marks(
    *,
    project: Project,
    since: str | None,
    opts: PreferenceOptions,
    verb: str,
    actor: Actor,
    token: ApiToken | None,
) -> Marked:
    after = export_cursor_decode(project=project, cursor=since) if since else 0
    if after and opts.method == "dawid_skene":
        raise ValidationError(
            {
                "since": [
                    "dawid_skene weighs every rater over the whole project, so any new "
                    "judgment can change any item's label: pull it in full (omit since)"
                ]
            }
        )
    upto = max(export_marks_advance(project=project, thorough=not after), after)
    audit_record(
        verb=verb,
        actor=actor,
        token=token,
        project=project,
        data={
            "method": opts.method,
            "language": opts.language.tag if opts.language else None,
            "min_agreement": opts.min_agreement,
            "since": after,
            "upto": upto,
            "style": opts.style,
            "shape": opts.shape,
            "pairs": opts.pairs,
            "split": opts.split,
            "exclude_ties": opts.exclude_ties,
        },
    )
    return Marked(project=project, after=after, upto=upto, language=opts.language)


# ---------------------------------------------------------------------------------------
# Units: each marked item (or prompt group) as (the line keys it may have, its lines now)
# ---------------------------------------------------------------------------------------


Unit = tuple[list[str], list[dict[str, Any]]]


def _lines(marked: Marked, opts: PreferenceOptions) -> Iterator[dict[str, Any]]:
    with closing(_units(marked, opts)) as units:
        for _keys, lines in units:
            yield from lines


def _units(marked: Marked, opts: PreferenceOptions, *, texts: bool = True) -> Iterator[Unit]:
    """The units of the marked items, from one cursor that is closed here, whatever raised.
    `texts=False`: the units' keys are right; their lines are bare keys (pairwise, unpaired)
    or have empty texts and no signals (rating pairs)."""
    project = marked.project
    read = {
        "metadata": texts and opts.style == "conversational",
        "signals": texts and opts.signals,
        "texts": texts,
        "prompt": texts or opts.split is not None,
    }
    if project.task_type == TaskType.PAIRWISE:
        # In item order: a full pull merges the marks' and the items' indexes, one pass over
        # each with no sort; a since pull sorts the few rows it reads.
        rows = marked_rows(marked, order_by="m.item_id", **read)
        with closing(_labelled(rows, project, opts)) as labelled:
            yield from _pairwise_units(labelled, opts, keys_only=not texts)
    elif opts.shape == "unpaired":
        rows = marked_rows(marked, order_by="m.item_id", **read)
        with closing(_labelled(rows, project, opts)) as labelled:
            yield from _unpaired_units(labelled, opts, keys_only=not texts)
    else:
        # A prompt's responses come together: sorted by language and prompt.
        rows = marked_rows(marked, order_by="m.language_id, m.prompt_id, m.item_id", **read)
        with closing(_labelled(rows, project, opts)) as labelled:
            yield from _rating_pair_units(labelled, project, opts)


Labelled = tuple[ExportRow, ItemLabel | None]


def _labelled(
    rows: Iterator[ExportRow], project: Project, opts: PreferenceOptions
) -> Iterator[Labelled]:
    """Each row with its item's label, or None when the item is not settled (its line, if
    a consumer has one, is retracted)."""
    fitted = None
    if opts.method == "dawid_skene":
        # Dawid–Skene weighs each rater by their reliability over the whole project, so it
        # is fitted once, before the first row; only its choice per item stays in memory.
        fitted = dawid_skene_choices(project=project)
    rule = LabelRule.of(project)
    overlap = project.overlap
    try:
        for row in rows:
            # "a:2,a:1,b:" → [["a", "2"], ["a", "1"], ["b", ""]]
            votes = [vote.split(":") for vote in row.votes.split(",")] if row.votes else ()
            final = json_value(row.final)
            if not row_settled(
                status=row.status,
                is_gold=row.is_gold,
                has_final=final is not None,
                n_votes=len(votes),
                overlap=overlap,
            ):
                yield row, None
                continue
            # An item judged after the fit has no fitted choice: its votes' majority labels it.
            choice = fitted.get(row.id) if fitted is not None else None
            yield row, item_label(rule=rule, votes=votes, final=final, choice=choice)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # the cursor and its fetching thread end here, whatever raised


def _passes(label: ItemLabel, min_agreement: float | None) -> bool:
    # Adjudicated labels settled the disagreement; min_agreement filters aggregates only.
    if min_agreement is None or label.source == "final":
        return True
    return label.agreement is not None and label.agreement >= min_agreement


def _in_split(prompt: str, opts: PreferenceOptions) -> bool:
    """Whether a prompt's lines belong to the asked split: a hash of the prompt decides,
    so every line of one prompt lands on the same side."""
    if opts.split is None:
        return True
    digest = hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).digest()
    in_test = int.from_bytes(digest, "big") / 2**64 < opts.test_fraction
    return in_test == (opts.split == "test")


def _messages(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def _prompt_messages(prompt: str, metadata: dict[str, Any] | None) -> list[dict[str, str]]:
    # `metadata.conversation` (a list of role/content turns) makes a multi-turn prompt;
    # a trailing assistant turn is the response itself and is left out.
    conversation = (metadata or {}).get("conversation")
    if (
        isinstance(conversation, list)
        and conversation
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in conversation
        )
    ):
        turns = [{"role": m["role"], "content": m["content"]} for m in conversation]
        if turns[-1]["role"] == "assistant":
            turns = turns[:-1]
        if turns:
            return turns
    return _messages("user", prompt)


def _prompt(row: ExportRow, opts: PreferenceOptions) -> Any:
    if opts.style == "conversational":
        return _prompt_messages(row.prompt, json_value(row.metadata))
    return opts.prompt_template.replace("{prompt}", row.prompt) if row.prompt else ""


def _completion(text: str, opts: PreferenceOptions) -> Any:
    return _messages("assistant", text) if opts.style == "conversational" else text


def _mean_logprob(value: Any) -> float | None:
    logprobs = json_value(value)
    if not isinstance(logprobs, list) or not logprobs:
        return None
    return float(sum(logprobs) / len(logprobs))


def _pairwise_units(
    labelled: Iterator[Labelled], opts: PreferenceOptions, *, keys_only: bool = False
) -> Iterator[Unit]:
    """`keys_only`: a kept item's line is just its key (what a retraction needs)."""
    scaled = opts.margin == "scaled"
    for row, label in labelled:
        keys = [row.external_id]
        if label is None:
            yield keys, []
            continue
        choice = label.value.get("choice")
        if (
            choice not in ("a", "b", "tie")
            or (choice == "tie" and opts.exclude_ties)
            or not _passes(label, opts.min_agreement)
            or not _in_split(row.prompt, opts)
        ):
            yield keys, []
            continue
        if keys_only:
            yield keys, [{"item_id": row.external_id}]
            continue
        if choice == "b":
            chosen, rejected, model_chosen, model_rejected = (
                row.response_b,
                row.response_a,
                row.model_b,
                row.model_a,
            )
        else:
            chosen, rejected, model_chosen, model_rejected = (
                row.response_a,
                row.response_b,
                row.model_a,
                row.model_b,
            )
        gap = float(label.value.get("strength", 1)) if choice != "tie" else 0.0
        line = {
            "prompt": _prompt(row, opts),
            "chosen": _completion(chosen, opts),
            "rejected": _completion(rejected, opts),
            "language": row.language,
            "item_id": row.external_id,
            "n_judgments": label.n_judgments,
            "agreement": label.agreement,
            "guideline_version": row.version or "",
            "model_chosen": model_chosen,
            "model_rejected": model_rejected,
            "gap": gap,
            "tie": choice == "tie",
            "label_source": label.source,
            "chosen_item_id": row.external_id,
            "rejected_item_id": row.external_id,
        }
        if scaled:
            line["margin"] = gap / 2
        if opts.signals:
            # An item carries one log-prob sequence: response A's (see the import format).
            a_first = choice != "b"
            line["reward_chosen"] = row.reward_a if a_first else row.reward_b
            line["reward_rejected"] = row.reward_b if a_first else row.reward_a
            mean = _mean_logprob(row.token_logprobs)
            line["mean_logprob_chosen"] = mean if a_first else None
            line["mean_logprob_rejected"] = None if a_first else mean
        yield keys, [line]


def _score(label: ItemLabel) -> float | None:
    """The aggregated rating: the final label's score, else the mean of the judgments."""
    if label.source != "final" and label.mean is not None:
        return float(label.mean)
    score = label.value.get("score")
    return float(score) if isinstance(score, int | float) else None


def _unpaired_units(
    labelled: Iterator[Labelled], opts: PreferenceOptions, *, keys_only: bool = False
) -> Iterator[Unit]:
    """`keys_only`: a kept item's line is just its key (what a retraction needs)."""
    assert opts.threshold is not None
    for row, label in labelled:
        keys = [row.external_id]
        score = _score(label) if label is not None else None
        if (
            label is None
            or score is None
            or not _passes(label, opts.min_agreement)
            or not _in_split(row.prompt, opts)
        ):
            yield keys, []
            continue
        if keys_only:
            yield keys, [{"item_id": row.external_id}]
            continue
        line = {
            "prompt": _prompt(row, opts),
            "completion": _completion(row.response, opts),
            "label": score >= opts.threshold,
            "language": row.language,
            "item_id": row.external_id,
            "n_judgments": label.n_judgments,
            "agreement": label.agreement,
            "guideline_version": row.version or "",
            "model": row.model,
            "score": score,
            "label_source": label.source,
        }
        if opts.signals:
            line["reward"] = row.reward
            line["mean_logprob"] = _mean_logprob(row.token_logprobs)
        yield keys, [line]


def _rating_pair_units(
    labelled: Iterator[Labelled], project: Project, opts: PreferenceOptions
) -> Iterator[Unit]:
    group: list[Labelled] = []
    key: tuple[str, str] | None = None
    for row, label in labelled:
        if not row.prompt_id:
            continue  # a response with no prompt id has nothing to pair with
        if (row.language, row.prompt_id) != key:
            if group:
                yield _rating_group(group, project, opts)
            group, key = [], (row.language, row.prompt_id)
        group.append((row, label))
    if group:
        yield _rating_group(group, project, opts)


def _rating_group(group: list[Labelled], project: Project, opts: PreferenceOptions) -> Unit:
    """The line keys of one prompt's responses and their lines now."""
    first = group[0][0]
    base = f"{first.language}/{first.prompt_id}"
    scored = []
    for row, label in group:
        score = _score(label) if label is not None else None
        if label is None or score is None or not _passes(label, opts.min_agreement):
            continue
        scored.append(
            (score, label.agreement if label.agreement is not None else -1.0, -row.id, row, label)
        )
    # A deleted response's tombstone (retractions) has no prompt: the others' decides.
    in_split = _in_split(next((r.prompt for r, _ in group if r.prompt is not None), ""), opts)
    low, high = _scale(project)
    if opts.pairs == "best_worst":
        keys = [base]
        if len(scored) < 2 or not in_split:
            return keys, []
        # Highest score wins; among equals the better-agreed, then the older item, so the pick is stable.
        scored.sort(key=lambda s: (s[0], s[1], s[2]))
        best = scored.pop()
        # Lowest score loses; among equals the better-agreed one (surest to be worse).
        worst = min(scored, key=lambda s: (s[0], -s[1], -s[2]))
        line = _rating_line(best, worst, item_id=base, opts=opts, width=high - low)
        return keys, [line] if line is not None else []
    ids = sorted(row.external_id for row, _label in group)
    keys = [f"{base}/{a}/{b}" for a, b in combinations(ids, 2)]
    if not in_split:
        return keys, []
    lines = []
    for one, other in combinations(scored, 2):
        better, worse = (
            (one, other)
            if (one[0], one[1], one[2]) >= (other[0], other[1], other[2])
            else (other, one)
        )
        a, b = sorted((one[3].external_id, other[3].external_id))
        line = _rating_line(better, worse, item_id=f"{base}/{a}/{b}", opts=opts, width=high - low)
        if line is not None:
            lines.append(line)
    return keys, lines


def _rating_line(
    best: tuple[Any, ...],
    worst: tuple[Any, ...],
    *,
    item_id: str,
    opts: PreferenceOptions,
    width: float,
) -> dict[str, Any] | None:
    gap = best[0] - worst[0]
    if gap == 0 and opts.exclude_ties:
        return None
    if gap < opts.min_gap:
        return None
    brow, blabel = best[3], best[4]
    wrow, wlabel = worst[3], worst[4]
    agreements = [a for a in (blabel.agreement, wlabel.agreement) if a is not None]
    sources = {blabel.source, wlabel.source}
    line = {
        "prompt": _prompt(brow, opts),
        "chosen": _completion(brow.response, opts),
        "rejected": _completion(wrow.response, opts),
        "language": brow.language,
        "item_id": item_id,
        "n_judgments": blabel.n_judgments + wlabel.n_judgments,
        "agreement": min(agreements) if agreements else None,
        "guideline_version": max(brow.version or "", wrow.version or ""),
        "model_chosen": brow.model,
        "model_rejected": wrow.model,
        "gap": gap,
        "tie": gap == 0,
        "label_source": sources.pop() if len(sources) == 1 else "mixed",
        "chosen_item_id": brow.external_id,
        "rejected_item_id": wrow.external_id,
    }
    if opts.margin == "scaled":
        line["margin"] = min(1.0, max(0.0, gap / width)) if width > 0 else 0.0
    if opts.signals:
        line["reward_chosen"] = brow.reward
        line["reward_rejected"] = wrow.reward
        line["mean_logprob_chosen"] = _mean_logprob(brow.token_logprobs)
        line["mean_logprob_rejected"] = _mean_logprob(wrow.token_logprobs)
    return line


# ---------------------------------------------------------------------------------------
# The Parquet schema of a pull
# ---------------------------------------------------------------------------------------


_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_TYPES = {
    "language": pa.string(),
    "item_id": pa.string(),
    "n_judgments": pa.int64(),
    "agreement": pa.float64(),
    "guideline_version": pa.string(),
    "model_chosen": pa.string(),
    "model_rejected": pa.string(),
    "gap": pa.float64(),
    "tie": pa.bool_(),
    "label_source": pa.string(),
    "chosen_item_id": pa.string(),
    "rejected_item_id": pa.string(),
    "margin": pa.float64(),
    "reward_chosen": pa.float64(),
    "reward_rejected": pa.float64(),
    "mean_logprob_chosen": pa.float64(),
    "mean_logprob_rejected": pa.float64(),
    "label": pa.bool_(),
    "model": pa.string(),
    "score": pa.float64(),
    "reward": pa.float64(),
    "mean_logprob": pa.float64(),
}
_TEXT_COLUMNS = ("prompt", "chosen", "rejected", "completion")


def preference_arrow_schema(opts: PreferenceOptions) -> pa.Schema:
    text = _MESSAGES if opts.style == "conversational" else pa.string()
    return pa.schema(
        [(name, text if name in _TEXT_COLUMNS else _TYPES[name]) for name in opts.columns()]
    )
