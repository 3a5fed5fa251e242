"""Small builders shared by the guidelines tests."""

from __future__ import annotations

from typing import Any

from annotation.gold import gold_create
from annotation.models import GoldAnswer, Item, Language, Project
from guidelines.models import CalibrationRound
from guidelines.services import calibration_round_create, calibration_round_open


def make_gold(
    project: Project,
    language: Language,
    external_id: str,
    score: int,
    *,
    points: int = 0,
    explanation: str = "",
) -> Item:
    """A rating gold item (the ParityTestCase project is a 1–5 rating project)."""
    gold = gold_create(
        project=project,
        external_id=external_id,
        language=language.tag,
        prompt=f"Translate: sentence {external_id}",
        response=f"نص {external_id}" if language.direction == "rtl" else f"Text {external_id}",
        value={"score": score},
        tolerance={"points": points} if points else {},
        explanation=explanation or f"Because {external_id} deserves {score}.",
    )
    return gold.item


def make_round(
    project: Project,
    language: Language,
    items: list[Item],
    *,
    pass_mark: float = 0.5,
    cooldown: int = 60,
    open_it: bool = True,
    **extra: Any,
) -> CalibrationRound:
    calibration_round = calibration_round_create(
        project=project,
        language=language.tag,
        pass_mark=pass_mark,
        cooldown_seconds=cooldown,
        gold_item_ids=[item.pk for item in items],
        **extra,
    )
    if open_it:
        calibration_round = calibration_round_open(calibration_round=calibration_round)
    return calibration_round


def gold_score(item: Item) -> int:
    return GoldAnswer.objects.get(item=item).value["score"]
