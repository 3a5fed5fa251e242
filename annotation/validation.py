"""How text from outside is cleaned, everywhere: imported items and judgments, judgment
comments, adjudication reasons, gold explanations, guideline bodies and notes.

One rule: text is a string without NUL or lone surrogates, NFC-normalised (so the same
word typed on two keyboards compares, counts and hashes the same), within a length. Text a
person types (`strip=True`, the default) also loses surrounding whitespace and Windows line
ends; imported content (`strip=False`) keeps its whitespace, which can be part of what a
model wrote.

The schema-driven validators (judgment values, gold answers) are in `annotation.schema`.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.core.exceptions import ValidationError


class TextInvalid(ValidationError):
    """Text refused by `text_clean`. `field` and `reason` let a caller word or translate
    its own message; `code` says which rule failed: required, type, nul, surrogate, length."""

    def __init__(self, field: str, reason: str, *, code: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}", code=code)


def text_clean(
    value: Any, *, field: str, max_chars: int, required: bool = False, strip: bool = True
) -> str:
    """The cleaned text, or TextInvalid saying what is wrong with it. None is empty text."""
    if value is None or value == "":
        if required:
            raise TextInvalid(field, "is required", code="required")
        return ""
    if not isinstance(value, str):
        raise TextInvalid(field, "must be a string", code="type")
    if "\x00" in value:
        raise TextInvalid(field, "contains a NUL character", code="nul")
    # ASCII is NFC and has no surrogates: most identifiers and model names skip the work.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TextInvalid(
                field, "contains a lone surrogate (not valid Unicode text)", code="surrogate"
            ) from None
        value = unicodedata.normalize("NFC", value)
    if strip:
        value = value.replace("\r\n", "\n").strip()
    if len(value) > max_chars:
        raise TextInvalid(field, f"is longer than {max_chars} characters", code="length")
    if required and not value.strip():
        raise TextInvalid(field, "is required", code="required")
    return value
