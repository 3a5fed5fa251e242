"""Validation and bulk import of items (the CLI and the REST API share this module).

A batch is atomic: every line is validated, every bad line is reported with its number,
field and reason, and if any line is bad nothing of the batch is stored. Import is
idempotent by `external_id`: the same content again is a no-op; changed content updates
an item that has no judgments yet and is refused (a conflict) for one that has.
Lines are read as a stream and written in chunks inside one transaction, so memory stays
flat however long the batch is.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.audit import audit_record
from annotation.languages import language_tag_normalize
from annotation.models import GoldAnswer, Item, ItemSource, ItemStatus, Judgment, Language, Project, TaskType
from annotation.schema import judgment_value_validate

CHUNK = 2000
MAX_ERRORS = 1000
MAX_LOGPROBS = 100_000
MAX_METADATA_BYTES = 64 * 1024

# Content fields: what the content hash covers and what an update may change.
CONTENT_FIELDS = (
    "language", "prompt", "response", "response_a", "response_b", "model", "model_a", "model_b",
    "prompt_id", "metadata", "token_logprobs", "token_entropy", "reward", "reward_a", "reward_b",
)
TEXT_FIELDS = ("prompt", "response", "response_a", "response_b")
SHORT_FIELDS = ("model", "model_a", "model_b", "prompt_id")
NUMBER_FIELDS = ("token_entropy", "reward", "reward_a", "reward_b")
REQUIRED_TEXT = {
    TaskType.RATING: ("response",),
    TaskType.LABELS: ("response",),
    TaskType.PAIRWISE: ("response_a", "response_b"),
}
ALLOWED_FIELDS = frozenset({"external_id", "gold", "source", *CONTENT_FIELDS})


@dataclass(frozen=True)
class LineError:
    line: int
    message: str
    field: str | None = None
    code: str = "invalid"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class ImportRejected(Exception):
    """The batch was refused; nothing was stored."""

    def __init__(self, errors: list[LineError], *, truncated: bool = False) -> None:
        self.errors = errors
        self.truncated = truncated
        super().__init__("; ".join(str(e) for e in errors[:5]))

    @property
    def is_conflict(self) -> bool:
        return bool(self.errors) and all(e.code == "conflict" for e in self.errors)


@dataclass
class ImportResult:
    created: int = 0
    unchanged: int = 0
    updated: int = 0
    item_ids: list[int] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "unchanged": self.unchanged, "updated": self.updated}


class _LineInvalid(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------


def jsonl_records(lines: Iterable[bytes | str]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object or LineError) for each non-blank JSON line."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, LineError(number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, LineError(number, f"not valid JSON: {exc.msg} at column {exc.colno}")


def text_clean(value: Any, *, field_name: str, max_chars: int | None = None, required: bool = False) -> str:
    """NFC-normalised text, or _LineInvalid saying what is wrong with it."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _LineInvalid(field_name, "must be a string")
    if "\x00" in value:
        raise _LineInvalid(field_name, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _LineInvalid(field_name, "contains a lone surrogate (not valid Unicode text)") from None
    value = unicodedata.normalize("NFC", value)
    limit = max_chars if max_chars is not None else settings.PARITY_MAX_TEXT_CHARS
    if len(value) > limit:
        raise _LineInvalid(field_name, f"is longer than {limit} characters")
    if required and not value.strip():
        raise _LineInvalid(field_name, "is required")
    return value


def _number(value: Any, *, field_name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _LineInvalid(field_name, "must be a finite number")
    return float(value)


def _json_clean(value: Any, *, field_name: str) -> Any:
    """Reject NUL and lone surrogates anywhere inside nested JSON (metadata)."""
    if isinstance(value, str):
        return text_clean(value, field_name=field_name)
    if isinstance(value, list):
        return [_json_clean(v, field_name=field_name) for v in value]
    if isinstance(value, dict):
        return {text_clean(k, field_name=field_name): _json_clean(v, field_name=field_name) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise _LineInvalid(field_name, "contains a number that is not finite")
    return value


class _Validator:
    """Validates one project's import lines; caches language look-ups across lines."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.languages: dict[str, Language] = {lang.tag: lang for lang in project.languages.all()}
        self.tag_cache: dict[str, Language | _LineInvalid] = {}
        self.seen_ids: set[str] = set()

    def language(self, raw: Any) -> Language:
        if not isinstance(raw, str):
            raise _LineInvalid("language", "a BCP 47 language tag is required")
        cached = self.tag_cache.get(raw)
        if cached is None:
            try:
                tag = language_tag_normalize(raw)
            except ValidationError as exc:
                cached = _LineInvalid("language", exc.messages[0])
            else:
                lang = self.languages.get(tag)
                if lang is None:
                    enabled = ", ".join(sorted(self.languages)) or "none"
                    cached = _LineInvalid(
                        "language", f"{tag!r} is not enabled for project {self.project.slug} (enabled: {enabled})"
                    )
                else:
                    cached = lang
            self.tag_cache[raw] = cached
        if isinstance(cached, _LineInvalid):
            raise cached
        return cached

    def clean(self, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise _LineInvalid(None, "each line must be a JSON object")
        unknown = sorted(set(record) - ALLOWED_FIELDS)
        if unknown:
            raise _LineInvalid(unknown[0], "is not an import field")
        external_id = text_clean(record.get("external_id"), field_name="external_id", max_chars=200, required=True)
        if external_id in self.seen_ids:
            raise _LineInvalid("external_id", f"{external_id!r} appears twice in this batch")
        out: dict[str, Any] = {"external_id": external_id, "language": self.language(record.get("language"))}
        required = REQUIRED_TEXT[self.project.task_type]
        for name in TEXT_FIELDS:
            out[name] = text_clean(record.get(name), field_name=name, required=name in required)
        if self.project.task_type == TaskType.PAIRWISE and record.get("response"):
            raise _LineInvalid("response", "a pairwise item has response_a and response_b, not response")
        if self.project.task_type != TaskType.PAIRWISE:
            for name in ("response_a", "response_b", "model_a", "model_b", "reward_a", "reward_b"):
                if record.get(name) not in (None, ""):
                    raise _LineInvalid(name, f"does not apply to a {self.project.task_type} project")
        for name in SHORT_FIELDS:
            out[name] = text_clean(record.get(name), field_name=name, max_chars=200)
        for name in NUMBER_FIELDS:
            out[name] = _number(record.get(name), field_name=name)
        logprobs = record.get("token_logprobs")
        if logprobs is not None:
            if not isinstance(logprobs, list) or len(logprobs) > MAX_LOGPROBS:
                raise _LineInvalid("token_logprobs", f"must be a list of at most {MAX_LOGPROBS} numbers")
            for v in logprobs:
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v > 0:
                    raise _LineInvalid("token_logprobs", "every log-probability must be a finite number ≤ 0")
        out["token_logprobs"] = logprobs
        metadata = record.get("metadata", {})
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise _LineInvalid("metadata", "must be a JSON object")
        metadata = _json_clean(metadata, field_name="metadata")
        if len(json.dumps(metadata, ensure_ascii=False)) > MAX_METADATA_BYTES:
            raise _LineInvalid("metadata", f"is larger than {MAX_METADATA_BYTES // 1024} KiB")
        out["metadata"] = metadata
        source = record.get("source", ItemSource.IMPORT)
        if source not in ItemSource.values:
            raise _LineInvalid("source", f"must be one of {', '.join(ItemSource.values)}")
        out["source"] = source
        gold = record.get("gold")
        if gold is not None:
            out["gold"] = self.gold(gold)
        self.seen_ids.add(external_id)
        return out

    def gold(self, gold: Any) -> dict[str, Any]:
        if not isinstance(gold, dict) or "value" not in gold:
            raise _LineInvalid("gold", 'must be an object with "value" (and optional "explanation", "tolerance")')
        try:
            value = judgment_value_validate(
                task_type=self.project.task_type, schema=self.project.schema, value=gold["value"]
            )
        except ValidationError as exc:
            raise _LineInvalid("gold.value", exc.messages[0]) from None
        tolerance = gold.get("tolerance", {})
        if not isinstance(tolerance, dict):
            raise _LineInvalid("gold.tolerance", "must be a JSON object")
        return {
            "value": value,
            "tolerance": tolerance,
            "explanation": text_clean(gold.get("explanation", ""), field_name="gold.explanation", max_chars=10_000),
        }


def content_hash(clean: dict[str, Any]) -> str:
    content = {name: clean[name] for name in CONTENT_FIELDS}
    content["language"] = clean["language"].tag
    content["gold"] = clean.get("gold")
    payload = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------


def items_import(
    *,
    project: Project,
    records: Iterable[tuple[int, Any]],
    actor: Any = None,
    token: Any = None,
    max_lines: int | None = None,
) -> ImportResult:
    """Import (line number, record) pairs into the project, all or nothing.

    Raises ImportRejected listing every bad line (up to MAX_ERRORS) when any line is bad.
    """
    max_lines = max_lines or settings.PARITY_MAX_IMPORT_LINES
    validator = _Validator(project)
    result = ImportResult()
    errors: list[LineError] = []
    truncated = False
    chunk: list[tuple[int, dict[str, Any]]] = []
    count = 0

    def add_error(error: LineError) -> None:
        nonlocal truncated
        if len(errors) < MAX_ERRORS:
            errors.append(error)
        else:
            truncated = True

    with transaction.atomic():
        for number, record in records:
            count += 1
            if count > max_lines:
                add_error(LineError(number, f"a batch holds at most {max_lines} lines; split the file"))
                break
            if isinstance(record, LineError):
                add_error(record)
                continue
            try:
                clean = validator.clean(record)
            except _LineInvalid as exc:
                add_error(LineError(number, exc.message, exc.field))
                continue
            clean["content_hash"] = content_hash(clean)
            chunk.append((number, clean))
            if len(chunk) >= CHUNK:
                _write_chunk(project, chunk, result, add_error, write=not errors)
                chunk = []
        if chunk:
            _write_chunk(project, chunk, result, add_error, write=not errors)
        if count == 0:
            add_error(LineError(0, "the batch is empty"))
        if errors:
            # Leaving the atomic block by an exception rolls back whatever chunks were written.
            raise ImportRejected(errors, truncated=truncated)
        audit_record(verb="items.import", actor=actor, token=token, project=project, data=result.as_dict())
    return result


def _write_chunk(project: Project, chunk: list[tuple[int, dict[str, Any]]], result: ImportResult, add_error: Any,
                 *, write: bool) -> None:
    ids = [clean["external_id"] for _, clean in chunk]
    existing = {
        row["external_id"]: row
        for row in Item.objects.filter(project=project, external_id__in=ids).values("id", "external_id", "content_hash", "is_gold")
    }
    changed_ids = [
        existing[c["external_id"]]["id"]
        for _, c in chunk
        if c["external_id"] in existing and existing[c["external_id"]]["content_hash"] != c["content_hash"]
    ]
    judged = set(Judgment.objects.filter(item_id__in=changed_ids).values_list("item_id", flat=True).distinct())
    now = timezone.now()
    queued = project.queue_on_import
    to_create: list[Item] = []
    golds: dict[str, dict[str, Any]] = {}
    to_update: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for number, clean in chunk:
        row = existing.get(clean["external_id"])
        if row is None:
            gold = clean.pop("gold", None)
            is_gold = gold is not None
            if is_gold:
                golds[clean["external_id"]] = gold
            to_create.append(
                Item(
                    project=project,
                    **{k: v for k, v in clean.items() if k != "gold"},
                    is_gold=is_gold,
                    status=ItemStatus.QUEUED if queued else ItemStatus.POOL,
                    open_slots=project.overlap if queued and not is_gold else 0,
                    created_at=now,
                    updated_at=now,
                )
            )
        elif row["content_hash"] == clean["content_hash"]:
            result.unchanged += 1
            result.item_ids.append(row["id"])
        elif row["id"] in judged:
            add_error(
                LineError(
                    number,
                    f"item {clean['external_id']!r} already has judgments; its content cannot change "
                    "(import it under a new external_id)",
                    "external_id",
                    code="conflict",
                )
            )
        else:
            to_update.append((row, clean))
    if not write:
        return
    if to_create:
        created = Item.objects.bulk_create(to_create, batch_size=CHUNK)
        result.created += len(created)
        if golds:
            by_external = {item.external_id: item for item in created if item.external_id in golds}
            GoldAnswer.objects.bulk_create(
                [GoldAnswer(item=by_external[ext], **gold) for ext, gold in golds.items()]
            )
        result.item_ids.extend(item.pk for item in created if item.pk is not None)
    for row, clean in to_update:
        item_id = row["id"]
        gold = clean.pop("gold", None)
        Item.objects.filter(pk=item_id).update(
            **{k: v for k, v in clean.items() if k != "external_id"},
            is_gold=gold is not None,
            updated_at=now,
            language_check=None,
            language_flagged=False,
        )
        if gold is not None:
            Item.objects.filter(pk=item_id).update(open_slots=0)
            GoldAnswer.objects.update_or_create(item_id=item_id, defaults=gold)
        elif row["is_gold"]:
            # No longer gold: it becomes an ordinary item with its slots.
            GoldAnswer.objects.filter(item_id=item_id).delete()
            Item.objects.filter(pk=item_id, status=ItemStatus.QUEUED).update(open_slots=project.overlap)
        result.updated += 1
        result.item_ids.append(item_id)
