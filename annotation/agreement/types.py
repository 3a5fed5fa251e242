"""The shapes of the agreement and parity reports (what the API, the pages and the
commands read). TypedDicts, so the reports stay plain JSON-ready dicts."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class LabelAlpha(TypedDict):
    label: str
    alpha: float | None
    ci: list[float | None]
    units: int


class AlphaSummary(TypedDict):
    alpha: float | None
    level: str
    ci: list[float | None]
    units: int
    judgments: int
    excluded_units: int
    labels: NotRequired[list[LabelAlpha]]  # multi-label projects, per label


class AgreementGroup(AlphaSummary):
    key: str
    label: str


class AgreementReport(AlphaSummary):
    project: str
    language: str | None
    by: str | None
    raters: int
    kinds: list[str]
    resamples: int
    seed: int
    confidence: float
    groups: NotRequired[
        list[dict[str, Any]]
    ]  # AgreementGroup, or an evaluator's row with `by=evaluator`
    kappa: NotRequired[dict[str, Any]]
    round_kinds: NotRequired[list[str]]


class Throughput(TypedDict):
    judgments_per_day: float | None
    judgments_last_7_days: int
    first_judgment_at: str | None
    last_judgment_at: str | None


class ParityFlag(TypedDict):
    code: str  # no_agreement, low_agreement, indistinct
    message: str  # in English, for pipelines; pages word it from the code


class ParityLanguage(Throughput):
    language: str
    name: str
    direction: str
    items: int
    items_judged: int
    items_in_adjudication: int
    items_final: int
    judgments: int
    raters: int
    alpha: float | None
    level: str
    ci: list[float | None]
    units: int
    excluded_units: int
    quality: dict[str, Any]
    models: list[dict[str, Any]]
    ranking: list[dict[str, Any]]
    honeypot: dict[str, Any]
    gap: float | None
    flags: list[ParityFlag]


class ParityReport(TypedDict):
    project: str
    task_type: str
    level: str
    agreement_threshold: float
    generated_at: str
    resamples: int
    seed: int
    confidence: float
    quality: dict[str, Any]
    best_language: str | None
    languages: list[ParityLanguage]
