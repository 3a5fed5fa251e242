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
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from annotation import metrics
from annotation.audit import audit_record
from annotation.label_changes import label_versions_bump
from annotation.languages import language_tag_normalize
from annotation.model_versions import MODEL_FIELDS, model_versions_register
from annotation.models import (
    ExternalRater,
    GoldAnswer,
    Item,
    ItemSource,
    ItemStatus,
    Judgment,
    JudgmentKind,
    Language,
    Project,
    TaskType,
)
from annotation.schema import (
    MAX_EXPLANATION_CHARS,
    gold_tolerance_validate,
    judgment_value_validate,
)
from annotation.validation import TextInvalid, text_clean

CHUNK = 2000
MAX_ERRORS = 1000
MAX_LOGPROBS = 100_000
MAX_METADATA_BYTES = 64 * 1024

# Content fields: what the content hash covers and what an update may change.
CONTENT_FIELDS = (
    "language",
    "prompt",
    "response",
    "response_a",
    "response_b",
    "model",
    "model_a",
    "model_b",
    "prompt_id",
    "metadata",
    "token_logprobs",
    "token_entropy",
    "reward",
    "reward_a",
    "reward_b",
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
SOURCES = frozenset(ItemSource.values)


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

    def summary(self, *, shown: int = 20) -> str:
        """The message a command prints: how many lines were bad and the first few of them."""
        lines = [str(e) for e in self.errors[:shown]]
        more = len(self.errors) - len(lines)
        tail = f" (and {more} more)" if more > 0 else ""
        return f"nothing imported; {len(self.errors)} bad line(s){tail}:\n  " + "\n  ".join(lines)


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
                yield (
                    number,
                    LineError(number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"),
                )
                continue
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, LineError(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
        except RecursionError:
            yield number, LineError(number, "not valid JSON: nested too deeply")


def _number(value: Any, *, field_name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _LineInvalid(field_name, "must be a finite number")
    return float(value)


def _logprobs_clean(logprobs: Any) -> list[float] | None:
    if logprobs is None:
        return None
    if not isinstance(logprobs, list) or len(logprobs) > MAX_LOGPROBS:
        raise _LineInvalid("token_logprobs", f"must be a list of at most {MAX_LOGPROBS} numbers")
    for v in logprobs:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v > 0:
            raise _LineInvalid(
                "token_logprobs", "every log-probability must be a finite number ≤ 0"
            )
    return logprobs


def _json_clean(value: Any, *, field_name: str, max_chars: int) -> Any:
    """Reject NUL and lone surrogates anywhere inside nested JSON (metadata)."""
    if isinstance(value, str):
        return text_clean(value, field=field_name, max_chars=max_chars, strip=False)
    if isinstance(value, list):
        return [_json_clean(v, field_name=field_name, max_chars=max_chars) for v in value]
    if isinstance(value, dict):
        return {
            text_clean(k, field=field_name, max_chars=max_chars, strip=False): _json_clean(
                v, field_name=field_name, max_chars=max_chars
            )
            for k, v in value.items()
        }
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
        # Read once per batch, not once per line: enum and settings look-ups add up over a large batch.
        self.pairwise = project.task_type == TaskType.PAIRWISE
        self.required = REQUIRED_TEXT[TaskType(project.task_type)]
        self.max_text = settings.PARITY_MAX_TEXT_CHARS

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
                        "language",
                        f"{tag!r} is not enabled for project {self.project.slug} (enabled: {enabled})",
                    )
                else:
                    cached = lang
            self.tag_cache[raw] = cached
        if isinstance(cached, _LineInvalid):
            raise cached
        return cached

    def clean(self, record: Any) -> dict[str, Any]:
        """The line's Item fields (with `gold` when it has one); its first fault is raised."""
        if not isinstance(record, dict):
            raise _LineInvalid(None, "each line must be a JSON object")
        if not ALLOWED_FIELDS.issuperset(record):
            raise _LineInvalid(sorted(set(record) - ALLOWED_FIELDS)[0], "is not an import field")
        external_id = text_clean(
            record.get("external_id"),
            field="external_id",
            max_chars=200,
            required=True,
            strip=False,
        )
        if external_id in self.seen_ids:
            raise _LineInvalid("external_id", f"{external_id!r} appears twice in this batch")
        out: dict[str, Any] = {
            "external_id": external_id,
            "language": self.language(record.get("language")),
        }
        self.texts(record, out)
        for name in NUMBER_FIELDS:
            out[name] = _number(record.get(name), field_name=name)
        out["token_logprobs"] = _logprobs_clean(record.get("token_logprobs"))
        out["metadata"] = self.metadata(record.get("metadata", {}))
        source = record.get("source", "import")
        if source not in SOURCES:
            raise _LineInvalid("source", f"must be one of {', '.join(ItemSource.values)}")
        out["source"] = source
        gold = record.get("gold")
        if gold is not None:
            out["gold"] = self.gold(gold)
        self.seen_ids.add(external_id)
        return out

    def texts(self, record: dict[str, Any], out: dict[str, Any]) -> None:
        """The texts and model names, the ones the task type needs required, the others refused."""
        for name in TEXT_FIELDS:
            out[name] = text_clean(
                record.get(name),
                field=name,
                max_chars=self.max_text,
                required=name in self.required,
                strip=False,
            )
        if self.pairwise and record.get("response"):
            raise _LineInvalid(
                "response", "a pairwise item has response_a and response_b, not response"
            )
        if not self.pairwise:
            for name in ("response_a", "response_b", "model_a", "model_b", "reward_a", "reward_b"):
                if record.get(name) not in (None, ""):
                    raise _LineInvalid(
                        name, f"does not apply to a {self.project.task_type} project"
                    )
        for name in SHORT_FIELDS:
            out[name] = text_clean(record.get(name), field=name, max_chars=200, strip=False)

    def metadata(self, metadata: Any) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise _LineInvalid("metadata", "must be a JSON object")
        metadata = _json_clean(metadata, field_name="metadata", max_chars=self.max_text)
        if len(json.dumps(metadata, ensure_ascii=False)) > MAX_METADATA_BYTES:
            raise _LineInvalid("metadata", f"is larger than {MAX_METADATA_BYTES // 1024} KiB")
        return metadata

    def gold(self, gold: Any) -> dict[str, Any]:
        if not isinstance(gold, dict) or "value" not in gold:
            raise _LineInvalid(
                "gold", 'must be an object with "value" (and optional "explanation", "tolerance")'
            )
        try:
            value = judgment_value_validate(
                task_type=self.project.task_type, schema=self.project.schema, value=gold["value"]
            )
        except ValidationError as exc:
            raise _LineInvalid("gold.value", exc.messages[0]) from None
        try:
            tolerance = gold_tolerance_validate(
                task_type=self.project.task_type,
                schema=self.project.schema,
                tolerance=gold.get("tolerance", {}),
            )
        except ValidationError as exc:
            raise _LineInvalid("gold.tolerance", exc.messages[0]) from None
        return {
            "value": value,
            "tolerance": tolerance,
            "explanation": text_clean(
                gold.get("explanation", ""),
                field="gold.explanation",
                max_chars=MAX_EXPLANATION_CHARS,
            ),
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


class _LineErrors:
    """The bad lines of one batch: the first MAX_ERRORS kept, the rest only counted."""

    def __init__(self) -> None:
        self.lines: list[LineError] = []
        self.truncated = False

    def add(self, error: LineError) -> None:
        if len(self.lines) < MAX_ERRORS:
            self.lines.append(error)
        else:
            self.truncated = True


def _batch_run(
    records: Iterable[tuple[int, Any]],
    *,
    max_lines: int,
    errors: _LineErrors,
    clean: Callable[[int, Any], dict[str, Any]],
    write: Callable[[list[tuple[int, dict[str, Any]]]], None],
) -> None:
    """Validate each line with `clean` and hand the good ones to `write` in chunks of
    CHUNK; every bad line (and an empty or oversized batch) goes to `errors`. Runs inside
    the caller's transaction, which raises ImportRejected afterwards when errors has any."""
    count = 0
    chunk: list[tuple[int, dict[str, Any]]] = []
    for number, record in records:
        count += 1
        if count > max_lines:
            errors.add(
                LineError(number, f"a batch holds at most {max_lines} lines; split the file")
            )
            break
        if isinstance(record, LineError):
            errors.add(record)
            continue
        try:
            chunk.append((number, clean(number, record)))
        except _LineInvalid as exc:
            errors.add(LineError(number, exc.message, exc.field))
            continue
        except TextInvalid as exc:
            errors.add(LineError(number, exc.reason, exc.field))
            continue
        if len(chunk) >= CHUNK:
            write(chunk)
            chunk = []
    if chunk:
        write(chunk)
    if count == 0:
        errors.add(LineError(0, "the batch is empty"))


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
    started = time.perf_counter()
    validator = _Validator(project)
    result = ImportResult()
    errors = _LineErrors()

    def clean(number: int, record: Any) -> dict[str, Any]:
        line = validator.clean(record)
        line["content_hash"] = content_hash(line)
        return line

    def write(chunk: list[tuple[int, dict[str, Any]]]) -> None:
        _write_chunk(project, chunk, result, errors.add, write=not errors.lines)

    with transaction.atomic():
        _batch_run(records, max_lines=max_lines, errors=errors, clean=clean, write=write)
        if errors.lines:
            # Leaving the atomic block by an exception rolls back whatever chunks were written.
            raise ImportRejected(errors.lines, truncated=errors.truncated)
        audit_record(
            verb="items.import", actor=actor, token=token, project=project, data=result.as_dict()
        )
        if result.created:
            # robust: the import has committed; a failed ANALYZE is logged, never the answer.
            transaction.on_commit(
                lambda: items_statistics_refresh(created=result.created), robust=True
            )
    metrics.import_observe(
        kind="items",
        rows=result.created + result.updated + result.unchanged,
        seconds=time.perf_counter() - started,
    )
    return result


def items_statistics_refresh(*, created: int) -> bool:
    """ANALYZE the item table when it has no planner statistics yet, or when `created` new
    rows at least doubled it since the last; returns whether it did.

    Each chunk of an import looks up its external ids (`_existing_items`). Without
    statistics PostgreSQL takes `external_id = ANY(2,000 ids)` to match most rows, and
    answers it by reading every item of the project through a smaller index, so a large
    first import slows down as the table grows until autovacuum's first ANALYZE (figures
    in bench/README.md). Once analysed, external_id
    is known to be unique, the lookup uses item_external_id_unique whatever the table's
    size, and autovacuum keeps the statistics current from there; this covers the first
    imports into a new database. SKIP_LOCKED: when another ANALYZE or VACUUM of the table
    is running, that one will do.
    """
    if connection.vendor != "postgresql":
        return False
    table = Item._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        (rows,) = cursor.fetchone()
        if rows >= 0 and created <= rows:  # -1: never analysed
            return False
        cursor.execute(f"ANALYZE (SKIP_LOCKED) {connection.ops.quote_name(table)}")
    return True


@dataclass
class _ChunkPlan:
    """What a chunk of valid lines will do, decided before anything is written."""

    now: Any
    create: list[dict[str, Any]] = field(
        default_factory=list
    )  # Item keyword arguments, `project` aside
    golds: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # external_id → GoldAnswer fields
    update: list[tuple[dict[str, Any], dict[str, Any]]] = field(
        default_factory=list
    )  # (stored row, line)
    unchanged: list[int] = field(default_factory=list)  # item ids
    conflicts: list[LineError] = field(default_factory=list)


def _write_chunk(
    project: Project,
    chunk: list[tuple[int, dict[str, Any]]],
    result: ImportResult,
    add_error: Callable[[LineError], None],
    *,
    write: bool,
) -> None:
    """Classify the chunk's lines against what is stored, then (unless an earlier chunk
    had bad lines, so the batch will be rolled back anyway) apply the plan."""
    plan = _chunk_classify(project, chunk)
    result.unchanged += len(plan.unchanged)
    result.item_ids.extend(plan.unchanged)
    for error in plan.conflicts:
        add_error(error)
    if write:
        _items_create(project, plan, result)
        for row, clean in plan.update:
            _item_update(project, row, clean, now=plan.now)
            result.updated += 1
            result.item_ids.append(row["id"])


def _chunk_classify(project: Project, chunk: list[tuple[int, dict[str, Any]]]) -> _ChunkPlan:
    """New lines are created; a line whose content hash is stored is unchanged; a changed
    line updates its item, unless the item has judgments (a conflict)."""
    existing = {
        row["external_id"]: row
        for row in _existing_items(project, [c["external_id"] for _, c in chunk])
    }
    changed_ids = [
        existing[c["external_id"]]["id"]
        for _, c in chunk
        if c["external_id"] in existing
        and existing[c["external_id"]]["content_hash"] != c["content_hash"]
    ]
    judged = set(
        Judgment.objects.filter(item_id__in=changed_ids)
        .values_list("item_id", flat=True)
        .distinct()
    )
    plan = _ChunkPlan(now=timezone.now())
    for number, clean in chunk:
        row = existing.get(clean["external_id"])
        if row is None:
            plan.create.append(_new_item_fields(project, clean, plan))
        elif row["content_hash"] == clean["content_hash"]:
            plan.unchanged.append(row["id"])
        elif row["id"] in judged:
            plan.conflicts.append(
                LineError(
                    number,
                    f"item {clean['external_id']!r} already has judgments; its content cannot change "
                    "(import it under a new external_id)",
                    "external_id",
                    code="conflict",
                )
            )
        else:
            plan.update.append((row, clean))
    return plan


def _new_item_fields(project: Project, clean: dict[str, Any], plan: _ChunkPlan) -> dict[str, Any]:
    gold = clean.pop("gold", None)
    is_gold = gold is not None
    if is_gold:
        plan.golds[clean["external_id"]] = gold
    queued = project.queue_on_import
    return {
        **clean,
        "is_gold": is_gold,
        "status": ItemStatus.QUEUED if queued else ItemStatus.POOL,
        # A gold item is served as calibration or a honeypot, never from the open slots.
        "open_slots": project.overlap if queued and not is_gold else 0,
        "created_at": plan.now,
        "updated_at": plan.now,
    }


def _items_create(project: Project, plan: _ChunkPlan, result: ImportResult) -> None:
    # Unknown model names join the project's model registry (annotation.model_versions).
    model_versions_register(
        project=project,
        names={
            fields.get(name) or ""
            for fields in [*plan.create, *(clean for _row, clean in plan.update)]
            for name in MODEL_FIELDS
        },
    )
    if not plan.create:
        return
    if not plan.golds and connection.vendor == "postgresql":
        # COPY is several times faster than INSERT for bulk imports (see bench/README.md).
        new_ids = _copy_items(project, plan.create)
        result.created += len(new_ids)
        result.item_ids.extend(new_ids)
        return
    created = Item.objects.bulk_create(
        [Item(project=project, **fields) for fields in plan.create], batch_size=CHUNK
    )
    result.created += len(created)
    if plan.golds:
        by_external = {item.external_id: item for item in created if item.external_id in plan.golds}
        GoldAnswer.objects.bulk_create(
            [GoldAnswer(item=by_external[ext], **gold) for ext, gold in plan.golds.items()]
        )
    result.item_ids.extend(item.pk for item in created if item.pk is not None)


def _item_update(project: Project, row: dict[str, Any], clean: dict[str, Any], *, now: Any) -> None:
    """New content for an item without judgments; its language check is redone."""
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


def _existing_items(project: Project, external_ids: list[str]) -> Iterable[Any]:
    """id, external_id, content_hash, is_gold of the project's items with these external ids."""
    if connection.vendor == "postgresql":
        # One array parameter instead of thousands of IN placeholders.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, external_id, content_hash, is_gold FROM {Item._meta.db_table} "  # noqa: S608 - table name from the model
                "WHERE project_id = %s AND external_id = ANY(%s)",
                [project.pk, external_ids],
            )
            return [
                {"id": r[0], "external_id": r[1], "content_hash": r[2], "is_gold": r[3]}
                for r in cursor.fetchall()
            ]
    return Item.objects.filter(project=project, external_id__in=external_ids).values(
        "id", "external_id", "content_hash", "is_gold"
    )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).translate(_COPY_ESCAPES)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot COPY a {type(value).__name__}")


def _json_text(value: Any) -> str:
    # orjson is several times faster than the json module, which stays the fallback for
    # what orjson refuses (an integer beyond 64 bits); PostgreSQL parses either the same.
    try:
        return orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False)


def _copy_converter(field: Any) -> Any:
    """The function that renders this field's values in COPY text format."""
    kind = field.get_internal_type()
    if field.is_relation:
        return lambda v: "\\N" if v is None else str(v.pk)
    if kind in ("CharField", "TextField", "SlugField"):
        return lambda v: (
            "\\N"
            if v is None
            else (
                v.translate(_COPY_ESCAPES)
                if ("\\" in v or "\t" in v or "\n" in v or "\r" in v)
                else v
            )
        )
    if kind == "JSONField":
        return lambda v: "\\N" if v is None else _json_text(v).translate(_COPY_ESCAPES)
    if kind in (
        "FloatField",
        "IntegerField",
        "BigIntegerField",
        "PositiveSmallIntegerField",
        "PositiveIntegerField",
        "SmallIntegerField",
    ):
        return lambda v: "\\N" if v is None else repr(v)
    return _copy_text


def _copy_items(project: Project, rows: list[dict[str, Any]]) -> list[int]:
    """Insert items with COPY (PostgreSQL) and return their ids, in order.

    The COPY text is rendered here: building model instances and psycopg's per-value
    adaptation would cost more than the insert. Fields a row does not name get the model
    field's default, as Item(...) would. Ids are drawn from the table's sequence first (COPY
    returns nothing), so the caller has them without reading the rows back.
    """
    table = Item._meta.db_table
    fields = [f for f in Item._meta.concrete_fields if not f.primary_key]
    plan = []
    for f in fields:
        default = _copy_text(project.pk if f.name == "project" else f.get_default())
        plan.append((f.name, _copy_converter(f), default))
    pk = Item._meta.pk.column
    columns = ", ".join(
        connection.ops.quote_name(cast(str, c)) for c in [pk, *(f.column for f in fields)]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, pk, len(rows)],
        )
        ids = [r[0] for r in cursor.fetchall()]
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN"
        ) as copy,
    ):
        lines = []
        for item_id, row in zip(ids, rows, strict=True):
            lines.append(
                str(item_id)
                + "\t"
                + "\t".join(
                    [
                        convert(row[name]) if name in row else default
                        for name, convert, default in plan
                    ]
                )
            )
            if len(lines) >= 500:
                copy.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            copy.write("\n".join(lines) + "\n")
    return ids


# ---------------------------------------------------------------------------------------
# Historical judgments (a team's existing ratings, by external raters without logins)
# ---------------------------------------------------------------------------------------

JUDGMENT_FIELDS = frozenset({"item_external_id", "rater", "value", "created"})


def _created_clean(raw: Any, *, now: Any) -> Any:
    from datetime import UTC

    from django.utils.dateparse import parse_datetime

    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _LineInvalid("created", "must be an ISO 8601 date and time string")
    try:
        moment = parse_datetime(raw.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise _LineInvalid(
            "created", f"{raw!r} is not an ISO 8601 date and time (e.g. 2025-03-01T10:00:00Z)"
        )
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    if moment > now:
        raise _LineInvalid("created", f"{raw!r} is in the future")
    return moment


class _JudgmentLines:
    """Validates and stores one batch of historical judgments (the items' _Validator and
    _write_chunk in one): `clean` checks a line on its own, `write` checks a chunk of
    valid lines against what is stored and, while the batch has no bad line, stores it."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.now = timezone.now()
        self.result = ImportResult()
        self.errors = _LineErrors()
        self.seen: dict[tuple[str, str], int] = {}  # (item, rater) → first line in this batch

    def clean(self, number: int, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise _LineInvalid(None, "each line must be a JSON object")
        unknown = sorted(set(record) - JUDGMENT_FIELDS)
        if unknown:
            raise _LineInvalid(
                unknown[0],
                "is not a field of a judgment line (item_external_id, rater, value, created)",
            )
        external_id = text_clean(
            record.get("item_external_id"),
            field="item_external_id",
            max_chars=200,
            required=True,
            strip=False,
        )
        rater = text_clean(record.get("rater"), field="rater", max_chars=200, required=True)
        if "value" not in record:
            raise _LineInvalid("value", "is required")
        try:
            value = judgment_value_validate(
                task_type=self.project.task_type, schema=self.project.schema, value=record["value"]
            )
        except ValidationError as exc:
            raise _LineInvalid("value", exc.messages[0]) from None
        created = _created_clean(record.get("created"), now=self.now)
        first = self.seen.get((external_id, rater))
        if first is not None:
            raise _LineInvalid(
                "rater",
                f"rater {rater!r} already judged item {external_id!r} on line {first} of this batch",
            )
        self.seen[(external_id, rater)] = number
        return {"external_id": external_id, "rater": rater, "value": value, "created": created}

    def write(self, lines: list[tuple[int, dict[str, Any]]]) -> None:
        raters = dict(
            ExternalRater.objects.filter(
                project=self.project, external_id__in={c["rater"] for _, c in lines}
            ).values_list("external_id", "id")
        )
        new = self.classify(lines, raters)
        if self.errors.lines or not new:
            return
        self.store(new, raters)

    def classify(
        self, lines: list[tuple[int, dict[str, Any]]], raters: dict[str, int]
    ) -> list[tuple[int, dict[str, Any]]]:
        """(item id, line) of the lines to store; the same judgment again counts as unchanged,
        an unknown or gold item or a different stored judgment is a bad line."""
        items = {
            row[0]: row[1:]
            for row in Item.objects.filter(
                project=self.project, external_id__in={c["external_id"] for _, c in lines}
            ).values_list("external_id", "id", "is_gold")
        }
        stored = {
            (item_id, rater_id): value
            for item_id, rater_id, value in Judgment.objects.filter(
                item_id__in=[v[0] for v in items.values()],
                external_rater_id__in=raters.values(),
                is_current=True,
            ).values_list("item_id", "external_rater_id", "value")
        }
        new: list[tuple[int, dict[str, Any]]] = []
        for number, c in lines:
            found = items.get(c["external_id"])
            if found is None:
                self.errors.add(
                    LineError(
                        number,
                        f"no item with external_id {c['external_id']!r} in project "
                        f"{self.project.slug}",
                        "item_external_id",
                    )
                )
            elif found[1]:
                self.errors.add(
                    LineError(
                        number,
                        f"item {c['external_id']!r} is a gold item; historical judgments "
                        "go on production items",
                        "item_external_id",
                    )
                )
            else:
                previous = stored.get(
                    (found[0], raters.get(c["rater"], 0))
                )  # 0: a rater not stored yet
                if previous is None:
                    new.append((found[0], c))
                elif previous == c["value"]:
                    self.result.unchanged += 1
                else:
                    self.errors.add(
                        LineError(
                            number,
                            f"rater {c['rater']!r} already has a different judgment of item "
                            f"{c['external_id']!r} stored; judgments are not overwritten",
                            "rater",
                            code="conflict",
                        )
                    )
        return new

    def store(self, new: list[tuple[int, dict[str, Any]]], raters: dict[str, int]) -> None:
        missing = sorted({c["rater"] for _, c in new} - set(raters))
        if missing:
            ExternalRater.objects.bulk_create(
                [
                    ExternalRater(project=self.project, external_id=name, created_at=self.now)
                    for name in missing
                ],
                ignore_conflicts=True,
            )
            raters.update(
                ExternalRater.objects.filter(
                    project=self.project, external_id__in=missing
                ).values_list("external_id", "id")
            )
        Judgment.objects.bulk_create(
            [
                Judgment(
                    item_id=item_id,
                    external_rater_id=raters[c["rater"]],
                    kind=JudgmentKind.HISTORICAL,
                    value=c["value"],
                    created_at=c["created"] or self.now,
                )
                for item_id, c in new
            ],
            batch_size=CHUNK,
        )
        # New votes can change these items' labels: the export marks them again.
        label_versions_bump(items={item_id for item_id, _ in new})
        self.result.created += len(new)


def judgments_import(
    *,
    project: Project,
    records: Iterable[tuple[int, Any]],
    actor: Any = None,
    token: Any = None,
    max_lines: int | None = None,
) -> ImportResult:
    """Import historical judgments (item_external_id, rater, value, optional created), all or nothing.

    Raters become ExternalRater rows of the project; each judgment is stored with kind
    historical and no assignment. A line is refused when its item is unknown (or a gold
    item), its value is outside the project schema, or its (item, rater) pair appears
    twice in the batch or is already stored with a different value. The same line again is
    a no-op (counted as unchanged), so re-importing a file changes nothing.
    """
    started = time.perf_counter()
    batch = _JudgmentLines(project)
    with transaction.atomic():
        _batch_run(
            records,
            max_lines=max_lines or settings.PARITY_MAX_IMPORT_LINES,
            errors=batch.errors,
            clean=batch.clean,
            write=batch.write,
        )
        if batch.errors.lines:
            # Leaving the atomic block by an exception rolls back whatever chunks were written.
            raise ImportRejected(batch.errors.lines, truncated=batch.errors.truncated)
        if batch.result.created:
            # A batch that only repeats stored judgments writes nothing, not even an audit event.
            audit_record(
                verb="judgments.import",
                actor=actor,
                token=token,
                project=project,
                data=batch.result.as_dict(),
            )
    result = batch.result
    metrics.import_observe(
        kind="judgments",
        rows=result.created + result.updated + result.unchanged,
        seconds=time.perf_counter() - started,
    )
    return result
