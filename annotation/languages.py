"""Language tags: BCP 47, validated and normalised with `langcodes`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import langcodes
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import get_language

from annotation.models import Direction, Language

# ISO 15924 scripts written right to left.
RTL_SCRIPTS = frozenset(
    {
        "Adlm",
        "Arab",
        "Aran",
        "Armi",
        "Avst",
        "Cprt",
        "Hebr",
        "Hung",
        "Khar",
        "Lydi",
        "Mand",
        "Mani",
        "Mend",
        "Narb",
        "Nbat",
        "Nkoo",
        "Orkh",
        "Palm",
        "Phli",
        "Phlp",
        "Phnx",
        "Prti",
        "Rohg",
        "Samr",
        "Sarb",
        "Sogd",
        "Sogo",
        "Syrc",
        "Thaa",
        "Yezi",
    }
)


def language_tag_normalize(tag: str) -> str:
    """Return the standard form of a BCP 47 tag, or raise ValidationError saying why not."""
    if not isinstance(tag, str) or not tag.strip():
        raise ValidationError("language tag is empty")
    raw = tag.strip()
    if not langcodes.tag_is_valid(raw):
        raise ValidationError(f"{raw!r} is not a valid BCP 47 language tag")
    normal = langcodes.standardize_tag(raw)
    if langcodes.Language.get(normal).language in (None, "und"):
        raise ValidationError(f"{raw!r} does not name a language")
    return normal


def language_describe(tag: str) -> tuple[str, str, str]:
    """(display name, script, direction) for a normalised tag."""
    lang = langcodes.Language.get(tag)
    name = lang.display_name("en")
    script = lang.script or lang.maximize().script or ""
    direction = Direction.RTL if script in RTL_SCRIPTS else Direction.LTR
    return name, script, direction


@lru_cache(maxsize=2048)
def _display_name(tag: str, interface: str) -> str:
    try:
        return langcodes.Language.get(tag).display_name(interface)
    except (LookupError, ValueError):
        return tag


def language_display_name(tag: str) -> str:
    """The language's name in the active interface language ("الألمانية" for de in an
    Arabic interface, "German" in English): every name a person reads goes through here."""
    return _display_name(tag, get_language() or settings.LANGUAGE_CODE)


def language_get_or_create(*, tag: str) -> Language:
    normal = language_tag_normalize(tag)
    existing = Language.objects.filter(tag=normal).first()
    if existing:
        return existing
    name, script, direction = language_describe(normal)
    try:
        with transaction.atomic():
            return Language.objects.create(
                tag=normal, name=name, script=script, direction=direction
            )
    except IntegrityError:
        # Another request created it between our read and our insert.
        return Language.objects.get(tag=normal)


# Metadata keys by which an import says the prompt is in another language than the item
# (the source sentence of a translation): the demo's MLQE-PE and WMT items use source_language.
PROMPT_LANGUAGE_KEYS = ("prompt_language", "source_language")


@lru_cache(maxsize=256)
def _text_language(tag: str) -> tuple[str, str] | None:
    try:
        normal = language_tag_normalize(tag)
    except ValidationError:
        return None
    return normal, language_describe(normal)[2]


def prompt_language(item: Any) -> tuple[str, str]:
    """lang and dir of an item's prompt: the item's language, unless its metadata names
    another (PROMPT_LANGUAGE_KEYS, first valid tag wins). Every page that shows a prompt
    uses this, so the same prompt is marked up the same way everywhere."""
    metadata = item.metadata if isinstance(item.metadata, dict) else {}
    for key in PROMPT_LANGUAGE_KEYS:
        tag = metadata.get(key)
        if isinstance(tag, str) and tag:
            found = _text_language(tag)
            if found:
                return found
    return item.language.tag, item.language.direction
