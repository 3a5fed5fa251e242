"""Does a judgment match a gold answer, within its tolerance?"""

from __future__ import annotations

from typing import Any

from annotation.models import GoldAnswer, TaskType


def gold_matches(*, task_type: str, gold_value: dict[str, Any], tolerance: dict[str, Any], value: dict[str, Any]) -> bool:
    if task_type == TaskType.RATING:
        points = float(tolerance.get("points", 0))
        return abs(float(value["score"]) - float(gold_value["score"])) <= points
    if task_type == TaskType.PAIRWISE:
        if value["choice"] == gold_value["choice"]:
            return True
        # "ties configurable": a lead may accept a tie where the gold prefers one side.
        return bool(tolerance.get("tie_ok")) and value["choice"] == "tie" and gold_value["choice"] in ("a", "b")
    if task_type == TaskType.LABELS:
        got, want = set(value["labels"]), set(gold_value["labels"])
        threshold = tolerance.get("jaccard")
        if threshold is None:
            return got == want
        union = got | want
        return (len(got & want) / len(union) if union else 1.0) >= float(threshold)
    raise ValueError(f"unknown task type {task_type!r}")


def gold_answer_matches(*, gold: GoldAnswer, value: dict[str, Any]) -> bool:
    return gold_matches(
        task_type=gold.item.project.task_type, gold_value=gold.value, tolerance=gold.tolerance, value=value
    )
