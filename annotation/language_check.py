"""Is an item's output in the language it claims? Flag, never reject.

`lingua-language-detector` checks each response against the item's declared language:
an output whose most likely language is another one is flagged `wrong_language`, and an
output with a span of at least MIN_SPAN_CHARS in another language is flagged
`code_switching` with the spans (lingua's detect_multiple_languages_of). The prompt is
not checked: translation and cross-lingual prompts are legitimately in another language.

Cost: about 0.1 ms per response for the confidence values, plus 0.3 ms for the spans of
the responses whose declared language is not near-certain (SURE) — 5–40x the whole
per-item budget of a 20,000 items/s import. The check therefore runs after the import has
committed, as a plain function: on a Celery worker when a broker is configured, otherwise
in the web process after the response went out (see annotation.api.views.items), or inline
from the CLI. Detectors are built once per process per language set, with only the
project's languages plus the languages outputs most often slip into (CANDIDATES), which
keeps them accurate and fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from lingua import IsoCode639_1, IsoCode639_3, Language, LanguageDetector, LanguageDetectorBuilder

from annotation.background import broker_configured, task_send, task_send_on_commit
from annotation.models import Item, Project

# Languages model outputs most often slip into, checked beside the project's own.
CANDIDATES = ("en", "es", "fr", "de", "pt", "ru", "zh", "ar", "hi", "ja")
MIN_CHARS = 20
MIN_SPAN_CHARS = 20
# Above this confidence in the declared language a text is taken as written in it alone.
SURE = 0.99
CHECK_FIELDS = ("response", "response_a", "response_b")
BATCH = 500


def lingua_language(tag: str) -> Language | None:
    """The lingua language for a BCP 47 tag (by its primary subtag), or None when unsupported."""
    primary = tag.split("-", 1)[0].lower()
    try:
        if len(primary) == 2:
            return Language.from_iso_code_639_1(getattr(IsoCode639_1, primary.upper()))
        if len(primary) == 3:
            return Language.from_iso_code_639_3(getattr(IsoCode639_3, primary.upper()))
    except (AttributeError, ValueError):
        return None
    return None


def _tag(language: Language) -> str:
    return language.iso_code_639_1.name.lower()


@lru_cache(maxsize=32)
def language_detector(languages: frozenset[Language]) -> LanguageDetector:
    """One detector per language set per process (building and loading models is the slow part)."""
    return (
        LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()
    )


def detector_for_tags(tags: Iterable[str]) -> LanguageDetector:
    languages = {lang for tag in (*tags, *CANDIDATES) if (lang := lingua_language(tag)) is not None}
    return language_detector(frozenset(languages))


def _text_check(
    *, text: str, expected: Language, confidence: list[Any], spans: list[Any]
) -> dict[str, Any]:
    top = confidence[0]
    out: dict[str, Any] = {"detected": _tag(top.language), "confidence": round(top.value, 3)}
    mixed = [
        {"language": _tag(r.language), "start": r.start_index, "end": r.end_index}
        for r in spans
        if r.language != expected and r.end_index - r.start_index >= MIN_SPAN_CHARS
    ]
    if mixed:
        out["mixed"] = mixed
    return out


def language_check_texts(
    *, texts: list[str], expected: list[Language], detector: LanguageDetector
) -> list[dict[str, Any]]:
    """Check many texts at once (lingua spreads the work over all cores)."""
    long_enough = [i for i, text in enumerate(texts) if len(text.strip()) >= MIN_CHARS]
    confidences = detector.compute_language_confidence_values_in_parallel(
        [texts[i] for i in long_enough]
    )
    # Span detection costs three times the confidence values; a text whose declared
    # language is all but certain has no other-language span worth flagging.
    unsure = [
        k
        for k, (i, conf) in enumerate(zip(long_enough, confidences, strict=True))
        if next((c.value for c in conf if c.language == expected[i]), 0.0) < SURE
    ]
    found = detector.detect_multiple_languages_in_parallel_of(
        [texts[long_enough[k]] for k in unsure]
    )
    spans: dict[int, list[Any]] = dict(zip(unsure, found, strict=True))
    out: list[dict[str, Any]] = [{"skipped": "too short to tell"} for _ in texts]
    for k, (i, conf) in enumerate(zip(long_enough, confidences, strict=True)):
        out[i] = _text_check(
            text=texts[i], expected=expected[i], confidence=conf, spans=spans.get(k, [])
        )
    return out


def language_check_text(
    *, text: str, expected: Language, detector: LanguageDetector
) -> dict[str, Any]:
    """The check of one text: detected language, its confidence, and spans in other languages."""
    return language_check_texts(texts=[text], expected=[expected], detector=detector)[0]


def _summarise(
    tag: str, expected: Language, fields: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    result: dict[str, Any] = {"expected": tag, "fields": fields}
    reasons: set[str] = set()
    for check in fields.values():
        if "detected" in check and check["detected"] != _tag(expected):
            reasons.add("wrong_language")
        if check.get("mixed"):
            reasons.add("code_switching")
    # The item-level summary the model field documents: the first checked field's view.
    first = next((c for c in fields.values() if "detected" in c), None)
    if first is not None:
        result["detected"] = first["detected"]
        result["confidence"] = first["confidence"]
    mixed = [{**span, "field": name} for name, c in fields.items() for span in c.get("mixed", [])]
    if mixed:
        result["mixed"] = mixed
    result["flags"] = sorted(reasons)
    return result, bool(reasons)


def language_check_batch(*, items: list[Item], detector: LanguageDetector) -> None:
    """Set language_check and language_flagged on the items (not saved)."""
    jobs: list[tuple[int, str]] = []
    texts: list[str] = []
    expected: list[Language] = []
    targets: list[Language | None] = [lingua_language(item.language.tag) for item in items]
    for index, (item, target) in enumerate(zip(items, targets, strict=True)):
        if target is None:
            continue
        for name in CHECK_FIELDS:
            text = getattr(item, name)
            if text:
                jobs.append((index, name))
                texts.append(text)
                expected.append(target)
    checks = language_check_texts(texts=texts, expected=expected, detector=detector)
    fields: dict[int, dict[str, dict[str, Any]]] = {}
    for (index, name), check in zip(jobs, checks, strict=True):
        fields.setdefault(index, {})[name] = check
    for index, (item, target) in enumerate(zip(items, targets, strict=True)):
        if target is None:
            item.language_check, item.language_flagged = (
                {"expected": item.language.tag, "supported": False},
                False,
            )
        else:
            item.language_check, item.language_flagged = _summarise(
                item.language.tag, target, fields.get(index, {})
            )


def language_check_item(*, item: Item, detector: LanguageDetector) -> tuple[dict[str, Any], bool]:
    """(language_check, flagged) for an item's responses."""
    language_check_batch(items=[item], detector=detector)
    return item.language_check, item.language_flagged


def language_check_items(*, item_ids: Iterable[int]) -> int:
    """Check the given items that have no check yet; returns how many were checked."""
    ids = sorted(set(item_ids))
    checked = 0
    tags: dict[int, list[str]] = {}
    for start in range(0, len(ids), BATCH):
        batch = list(
            Item.objects.filter(pk__in=ids[start : start + BATCH], language_check__isnull=True)
            .select_related("language")
            .only("pk", "project_id", "language__tag", *CHECK_FIELDS)
        )
        by_project: dict[int, list[Item]] = {}
        for item in batch:
            by_project.setdefault(item.project_id, []).append(item)
        for project_id, items in by_project.items():
            if project_id not in tags:
                tags[project_id] = list(
                    Project.objects.get(pk=project_id).languages.values_list("tag", flat=True)
                )
            language_check_batch(items=items, detector=detector_for_tags(tags[project_id]))
        if batch:
            _checks_store(batch)
            checked += len(batch)
    return checked


def _checks_store(items: list[Item]) -> None:
    """Write the items' checks: one parameterised UPDATE run for all of them (pipelined on
    PostgreSQL). Django's bulk_update builds a CASE expression per item in Python, which
    took longer than the language detection itself (about 0.5 ms an item)."""
    check = Item._meta.get_field("language_check")
    flagged = Item._meta.get_field("language_flagged")
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(Item._meta.db_table)} SET {quote(check.column)} = %s, {quote(flagged.column)} = %s "
        f"WHERE {quote(Item._meta.pk.column)} = %s"
    )
    rows = [
        (check.get_db_prep_save(item.language_check, connection), item.language_flagged, item.pk)
        for item in items
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def language_check_pending(*, project: Project) -> int:
    """Check every item of the project that has not been checked (CLI imports, back-fills)."""
    ids = list(
        Item.objects.filter(project=project, language_check__isnull=True).values_list(
            "pk", flat=True
        )
    )
    return language_check_items(item_ids=ids)


@shared_task(name="annotation.language_check_items")
def language_check_task(item_ids: list[int]) -> int:
    # Idempotent: items checked already are skipped, so a redelivered message is harmless.
    return language_check_items(item_ids=item_ids)


ENQUEUE_CHUNK = 10_000


def language_check_enqueue(*, item_ids: list[int]) -> bool:
    """Send the check to a Celery worker after commit; False when no broker is configured
    (the caller then runs `language_check_items` itself, e.g. after its response).

    Until a worker has checked them the items are pending (no `language_check`); a broker
    that is down leaves them so, and `language_checks_resend` sends them again."""
    if not broker_configured() or not item_ids:
        return False
    for start in range(0, len(item_ids), ENQUEUE_CHUNK):
        task_send_on_commit(language_check_task, item_ids[start : start + ENQUEUE_CHUNK])
    return True


def language_checks_pending(*, older_than: timedelta, limit: int = 100_000) -> list[int]:
    """Ids of items still waiting for their language check, created before `older_than` ago."""
    return list(
        Item.objects.filter(language_check__isnull=True, created_at__lt=timezone.now() - older_than)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def language_checks_resend(*, older_than: timedelta) -> int:
    """The sweep's part: send pending checks to a worker (or run them here without a
    broker); returns how many items were pending."""
    if not settings.PARITY_LANGUAGE_CHECK:
        return 0
    ids = language_checks_pending(older_than=older_than)
    if not ids:
        return 0
    if not broker_configured():
        language_check_items(item_ids=ids)
        return len(ids)
    for start in range(0, len(ids), ENQUEUE_CHUNK):
        if not task_send(language_check_task, ids[start : start + ENQUEUE_CHUNK]):
            break
    return len(ids)
