"""Pool items and labels for the round tests."""

from __future__ import annotations

import math

from annotation.imports import judgments_import
from annotation.models import ItemStatus
from tests.factories import ItemFactory

GERMAN = [
    "Die Katze sitzt auf der Matte.",
    "Der Hund schläft im Garten.",
    "Heute regnet es in Berlin.",
    "Ich trinke gern Kaffee am Morgen.",
    "Das Buch liegt auf dem Tisch.",
    "Wir fahren morgen nach Hamburg.",
    "Der Zug hat zehn Minuten Verspätung.",
    "Sie singt ein altes Lied.",
    "Die Kinder spielen Fußball.",
    "Mein Bruder kocht heute Abend.",
    "Das Museum öffnet um neun Uhr.",
    "Der Winter war sehr kalt.",
]
ARABIC = [
    "القطة تجلس على الحصيرة.",
    "الكلب ينام في الحديقة.",
    "إنها تمطر اليوم في القاهرة.",
    "أحب شرب القهوة في الصباح.",
    "الكتاب على الطاولة.",
    "سنسافر غدا إلى الإسكندرية.",
    "تأخر القطار عشر دقائق.",
    "تغني أغنية قديمة.",
    "الأطفال يلعبون كرة القدم.",
    "أخي يطبخ الليلة.",
    "يفتح المتحف في التاسعة.",
    "كان الشتاء باردا جدا.",
]


def logprobs(confidence: float, length: int = 6) -> list[float]:
    """Token log-probs of an output the model was `confidence` sure of."""
    return [math.log(confidence)] * length


def pool_items(
    project, language, texts, *, prefix: str, confidences=None, with_logprobs: bool = True, **extra
):
    items = []
    for n, text in enumerate(texts):
        confidence = (
            confidences[n]
            if confidences is not None
            else 0.5 + 0.49 * ((n * 7) % len(texts)) / len(texts)
        )
        items.append(
            ItemFactory(
                project=project,
                language=language,
                external_id=f"{prefix}-{n}",
                response=text,
                status=ItemStatus.POOL,
                open_slots=0,
                token_logprobs=logprobs(confidence) if with_logprobs else None,
                **extra,
            )
        )
    return items


def historical_scores(project, scores_by_external_id: dict[str, list[int]]) -> None:
    records = []
    for external_id, scores in scores_by_external_id.items():
        for k, score in enumerate(scores):
            records.append(
                (
                    len(records) + 1,
                    {"item_external_id": external_id, "rater": f"r{k}", "value": {"score": score}},
                )
            )
    judgments_import(project=project, records=records)
