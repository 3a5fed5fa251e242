"""The data card: what an export of a project contains and where it came from."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from annotation.agreement import agreement_report
from annotation.exports.preferences import (
    PAIR_COLUMNS,
    PAIR_SIGNAL_COLUMNS,
    RETRACTION_COLUMNS,
    UNPAIRED_COLUMNS,
    UNPAIRED_SIGNAL_COLUMNS,
)
from annotation.models import COUNTED_JUDGMENT_KINDS, Item, ItemStatus, Judgment, Project


def _agreement_by_language(project: Project) -> dict[str, dict[str, Any]]:
    report = agreement_report(project=project, by="language", resamples=200)
    out = {}
    for group in report.get("groups", []):
        key = str(group.get("key", ""))
        out[key] = {k: group.get(k) for k in ("alpha", "level", "ci", "units", "judgments")}
    return out


def datacard_build(*, project: Project) -> dict[str, Any]:
    """What an export of this project contains and where it came from."""
    items = Item.objects.filter(project=project, is_gold=False)
    counted = Judgment.objects.filter(
        item__project=project, is_current=True, kind__in=COUNTED_JUDGMENT_KINDS
    )
    languages = _languages(project, items, counted)
    versions = [
        {"version": row["guideline_version"] or None, "judgments": row["n"]}
        for row in counted.values("guideline_version")
        .annotate(n=Count("pk"))
        .order_by("guideline_version")
    ]
    return {
        "project": {
            "slug": project.slug,
            "name": project.name,
            "task_type": project.task_type,
            "overlap": project.overlap,
            "agreement_level": project.agreement_level,
            "guideline_version": project.guideline_version or None,
        },
        "generated_at": timezone.now().isoformat(),
        "items": sum(lang["items"] for lang in languages),
        "judgments": sum(lang["judgments"] for lang in languages),
        "languages": languages,
        "guideline_versions": versions,
        "sources": _sources(items),
        "export": _export_contents(),
    }


def _export_contents() -> dict[str, Any]:
    """The columns of each shape of line, and what an export leaves out."""
    return {
        "columns": list(PAIR_COLUMNS),
        "unpaired_columns": list(UNPAIRED_COLUMNS),
        "optional_columns": {
            "margin=scaled (pairs)": ["margin"],
            "signals=1 (pairs)": list(PAIR_SIGNAL_COLUMNS),
            "signals=1 (unpaired)": list(UNPAIRED_SIGNAL_COLUMNS),
        },
        "retraction_columns": list(RETRACTION_COLUMNS),
        "excluded": "gold items (honeypots and calibration); honeypot and calibration judgments",
        "labels": "final (adjudicated) labels where present, else the aggregate of the method asked for",
    }


def _languages(
    project: Project, items: QuerySet[Item], counted: QuerySet[Judgment]
) -> list[dict[str, Any]]:
    """Per language: items (settled, flagged), judgments, who judged, agreement."""
    by_language = {
        row["language__tag"]: row
        for row in items.values("language__tag").annotate(
            items=Count("pk"),
            settled=Count("pk", filter=Q(status__in=[ItemStatus.DONE, ItemStatus.FINAL])),
            flagged=Count("pk", filter=Q(language_flagged=True)),
        )
    }
    judged = {
        row["item__language__tag"]: row
        for row in counted.values("item__language__tag").annotate(
            judgments=Count("pk"),
            evaluators=Count("evaluator", distinct=True),
            external_raters=Count("external_rater", distinct=True),
        )
    }
    agreement = _agreement_by_language(project)
    languages = []
    for language in project.languages.order_by("tag"):
        row: dict[str, Any] = dict(by_language.get(language.tag, {}))
        jrow: dict[str, Any] = dict(judged.get(language.tag, {}))
        languages.append(
            {
                "tag": language.tag,
                "name": language.name,
                "script": language.script,
                "direction": language.direction,
                "items": row.get("items", 0),
                "settled_items": row.get("settled", 0),
                "language_flagged_items": row.get("flagged", 0),
                "judgments": jrow.get("judgments", 0),
                "evaluators": jrow.get("evaluators", 0),
                "external_raters": jrow.get("external_raters", 0),
                "agreement": agreement.get(language.tag),
            }
        )
    return languages


def _sources(items: QuerySet[Item]) -> list[dict[str, Any]]:
    """Where the items came from: source, and the dataset and licence their metadata name."""
    return [
        {
            "source": row["source"],
            "dataset": row["dataset"] if isinstance(row["dataset"], str) else None,
            "licence": row["licence"] if isinstance(row["licence"], str) else None,
            "items": row["n"],
        }
        for row in items.values(
            "source", dataset=_metadata("dataset"), licence=_metadata("licence")
        )
        .annotate(n=Count("pk"))
        .order_by("source", "dataset", "licence")
    ]


def _metadata(key: str) -> KeyTextTransform:
    return KeyTextTransform(key, "metadata")


def _md_cell(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_columns(columns: list[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def datacard_markdown(card: dict[str, Any]) -> str:
    p = card["project"]
    lines = [
        f"# Data card: {_md_cell(p['name'])} (`{p['slug']}`)",
        "",
        f"- Task: {p['task_type']}, {p['overlap']} judgments per item, agreement level {p['agreement_level']}",
        f"- Current guideline version: {_md_cell(p['guideline_version'])}",
        f"- Items: {card['items']}; judgments: {card['judgments']}",
        f"- Generated: {card['generated_at']}",
        "",
        "## Languages",
        "",
        "| language | items | settled | flagged by language check | judgments | evaluators | external raters | alpha | 95% CI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lang in card["languages"]:
        agreement = lang["agreement"] or {}
        alpha = agreement.get("alpha")
        ci = agreement.get("ci") or [None, None]
        ci_text = f"{ci[0]:.3f}–{ci[1]:.3f}" if None not in ci else "—"
        lines.append(
            f"| {_md_cell(lang['name'])} (`{lang['tag']}`) | {lang['items']} | {lang['settled_items']} | "
            f"{lang['language_flagged_items']} | {lang['judgments']} | {lang['evaluators']} | "
            f"{lang['external_raters']} | {f'{alpha:.3f}' if isinstance(alpha, float) else '—'} | {ci_text} |"
        )
    lines += ["", "## Guideline versions", "", "| version | judgments |", "|---|---|"]
    lines += [
        f"| {_md_cell(v['version'])} | {v['judgments']} |" for v in card["guideline_versions"]
    ]
    lines += [
        "",
        "## Sources and licences",
        "",
        "| source | dataset | licence | items |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_md_cell(s['source'])} | {_md_cell(s['dataset'])} | {_md_cell(s['licence'])} | {s['items']} |"
        for s in card["sources"]
    ]
    lines += [
        "",
        "## What an export contains",
        "",
        f"- Pair columns (shape=pairs): {_md_columns(card['export']['columns'])}",
        f"- Unpaired columns (shape=unpaired, rating projects): {_md_columns(card['export']['unpaired_columns'])}",
        *(
            f"- With {option}: {_md_columns(columns)}"
            for option, columns in card["export"]["optional_columns"].items()
        ),
        f"- Retraction columns (incremental pulls): {_md_columns(card['export']['retraction_columns'])}",
        f"- Labels: {card['export']['labels']}",
        f"- Never exported: {card['export']['excluded']}",
        "",
    ]
    return "\n".join(lines)
