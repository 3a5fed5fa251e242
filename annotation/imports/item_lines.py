"""What an item line may hold and how it is cleaned: the fields, their limits, the
validator of one project's lines, and the content hash that makes import idempotent.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from annotation.imports.batch import LineInvalid
from annotation.languages import language_tag_normalize
from annotation.models import ItemSource, Language, Project, TaskType
from annotation.schema import (
    MAX_EXPLANATION_CHARS,
    gold_tolerance_validate,
    judgment_value_validate,
)
from annotation.validation import text_clean

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


def _number(value: Any, *, field_name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LineInvalid(field_name, "must be a finite number")
    return float(value)


def _logprobs_clean(logprobs: Any) -> list[float] | None:
    if logprobs is None:
        return None
    if not isinstance(logprobs, list) or len(logprobs) > MAX_LOGPROBS:
        raise LineInvalid("token_logprobs", f"must be a list of at most {MAX_LOGPROBS} numbers")
    for v in logprobs:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v > 0:
            raise LineInvalid("token_logprobs", "every log-probability must be a finite number ≤ 0")
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
        raise LineInvalid(field_name, "contains a number that is not finite")
    return value


class ItemValidator:
    """Validates one project's import lines; caches language look-ups across lines."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.languages: dict[str, Language] = {lang.tag: lang for lang in project.languages.all()}
        self.tag_cache: dict[str, Language | LineInvalid] = {}
        self.seen_ids: set[str] = set()
        # Read once per batch, not once per line: enum and settings look-ups add up over a large batch.
        self.pairwise = project.task_type == TaskType.PAIRWISE
        self.required = REQUIRED_TEXT[TaskType(project.task_type)]
        self.max_text = settings.PARITY_MAX_TEXT_CHARS

    def language(self, raw: Any) -> Language:
        if not isinstance(raw, str):
            raise LineInvalid("language", "a BCP 47 language tag is required")
        cached = self.tag_cache.get(raw)
        if cached is None:
            try:
                tag = language_tag_normalize(raw)
            except ValidationError as exc:
                cached = LineInvalid("language", exc.messages[0])
            else:
                lang = self.languages.get(tag)
                if lang is None:
                    enabled = ", ".join(sorted(self.languages)) or "none"
                    cached = LineInvalid(
                        "language",
                        f"{tag!r} is not enabled for project {self.project.slug} (enabled: {enabled})",
                    )
                else:
                    cached = lang
            self.tag_cache[raw] = cached
        if isinstance(cached, LineInvalid):
            raise cached
        return cached

    def clean(self, record: Any) -> dict[str, Any]:
        """The line's Item fields (with `gold` when it has one); its first fault is raised."""
        if not isinstance(record, dict):
            raise LineInvalid(None, "each line must be a JSON object")
        if not ALLOWED_FIELDS.issuperset(record):
            raise LineInvalid(sorted(set(record) - ALLOWED_FIELDS)[0], "is not an import field")
        external_id = text_clean(
            record.get("external_id"),
            field="external_id",
            max_chars=200,
            required=True,
            strip=False,
        )
        if external_id in self.seen_ids:
            raise LineInvalid("external_id", f"{external_id!r} appears twice in this batch")
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
            raise LineInvalid("source", f"must be one of {', '.join(ItemSource.values)}")
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
            raise LineInvalid(
                "response", "a pairwise item has response_a and response_b, not response"
            )
        if not self.pairwise:
            for name in ("response_a", "response_b", "model_a", "model_b", "reward_a", "reward_b"):
                if record.get(name) not in (None, ""):
                    raise LineInvalid(name, f"does not apply to a {self.project.task_type} project")
        for name in SHORT_FIELDS:
            out[name] = text_clean(record.get(name), field=name, max_chars=200, strip=False)

    def metadata(self, metadata: Any) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise LineInvalid("metadata", "must be a JSON object")
        metadata = _json_clean(metadata, field_name="metadata", max_chars=self.max_text)
        if len(json.dumps(metadata, ensure_ascii=False)) > MAX_METADATA_BYTES:
            raise LineInvalid("metadata", f"is larger than {MAX_METADATA_BYTES // 1024} KiB")
        return metadata

    def gold(self, gold: Any) -> dict[str, Any]:
        if not isinstance(gold, dict) or "value" not in gold:
            raise LineInvalid(
                "gold", 'must be an object with "value" (and optional "explanation", "tolerance")'
            )
        try:
            value = judgment_value_validate(
                task_type=self.project.task_type, schema=self.project.schema, value=gold["value"]
            )
        except ValidationError as exc:
            raise LineInvalid("gold.value", exc.messages[0]) from None
        try:
            tolerance = gold_tolerance_validate(
                task_type=self.project.task_type,
                schema=self.project.schema,
                tolerance=gold.get("tolerance", {}),
            )
        except ValidationError as exc:
            raise LineInvalid("gold.tolerance", exc.messages[0]) from None
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
