#!/usr/bin/env python
"""Progress-report benchmark: quality per language across model versions and weeks, with
bootstrap CIs, the CI of every change and every gap, breakdowns, alpha per language, and
(pairwise) Bradley–Terry strengths.

Two parts, each step printed with its seconds and the process's peak memory:

1. arrays: J judgments (default 1,000,000; 3 per item) in L languages (10) of V model
   versions (20), judged over W weeks (26), generated in memory with known effects and
   held as arrays — what the report has once the judgments are loaded. Timed: one score
   per item from its judgments, the series by model version and by week
   (annotation.progress.stats.progress_series), a breakdown, alpha with its CI per
   language (annotation.agreement.alpha_with_ci), and for a pairwise project the
   Bradley–Terry strengths of the V versions per language with CIs. All with R
   resamples (1,000). Target on the 2-core machine: under 5 s in all (rating project).
2. database: the same kind of data, J_db judgments (default 100,000) stored as items and
   historical judgments in a scratch SQLite file (or PostgreSQL with --database-url), then
   annotation.progress.progress_report(by="model") and (by="period") end to end, loading
   included. Writing a million judgments through the ORM on the shared 2-core machine
   takes minutes, so part 2 defaults to 100,000; --db-judgments raises it.

    .venv/bin/python bench/progress.py                                  # both parts
    .venv/bin/python bench/progress.py --skip-db                        # part 1 only
    .venv/bin/python bench/progress.py --judgments 100000 --db-judgments 30000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    LANGUAGES,
    django_on_scratch_database,
    machine_description,
    measure,
    peak_memory_mb,
)

START_DAY = "2025-01-06"  # a Monday


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    """Items with language, version, week, domain; three ratings each around a quality that
    rises with the version and differs by language."""
    import numpy as np

    rng = np.random.default_rng(args.seed)
    n_items = args.judgments // args.raters
    language = rng.integers(0, args.languages, n_items)
    version = rng.integers(0, args.versions, n_items)
    # Later versions are released later: their items are judged later.
    week = np.minimum(
        args.weeks - 1, (version * args.weeks) // args.versions + rng.integers(0, 3, n_items)
    )
    domain = rng.integers(0, 5, n_items)
    quality = 2.5 + 1.5 * version / max(1, args.versions - 1) - 0.08 * language
    truth = np.clip(np.round(quality[None, :] + rng.normal(0, 0.8, (args.raters, n_items))), 1, 5)
    noisy = rng.random((args.raters, n_items)) < 0.2
    ratings = np.where(noisy, rng.integers(1, 6, (args.raters, n_items)), truth).astype(np.int64)
    return {
        "language": language,
        "version": version,
        "week": week,
        "domain": domain,
        "ratings": ratings,
        "n_items": n_items,
    }


def part_arrays(args: argparse.Namespace) -> None:
    import numpy as np

    from annotation.agreement import alpha_with_ci
    from annotation.progress.stats import (
        bootstrap_group_means,
        bradley_terry_bootstrap,
        progress_series,
    )

    data = _generate(args)
    n_items = data["n_items"]
    print(
        f"\n1. arrays: {n_items * args.raters:,} judgments on {n_items:,} items, {args.languages} languages, "
        f"{args.versions} model versions, {args.weeks} weeks, {args.resamples:,} resamples"
    )
    # The judgments as the database gives them: one row per judgment (item, rater, score).
    item = np.tile(np.arange(n_items), args.raters)
    score = data["ratings"].ravel()
    totals: list[tuple[float, float]] = []
    per_item, _ = measure(
        "one score per item (mean of its judgments)",
        lambda: (
            np.bincount(item, weights=score, minlength=n_items)
            / np.bincount(item, minlength=n_items)
        ),
        totals=totals,
    )
    L, V, W = args.languages, args.versions, args.weeks
    by_model, _ = measure(
        f"series by model version ({L}×{V} groups, changes, gaps)",
        lambda: progress_series(
            data["language"],
            data["version"],
            per_item,
            n_languages=L,
            n_keys=V,
            resamples=args.resamples,
            seed=args.seed,
        ),
        totals=totals,
    )
    measure(
        f"series by week ({L}×{W} groups, changes, gaps)",
        lambda: progress_series(
            data["language"],
            data["week"],
            per_item,
            n_languages=L,
            n_keys=W,
            resamples=args.resamples,
            seed=args.seed,
        ),
        totals=totals,
    )
    measure(
        f"breakdown by domain ({L}×5 groups)",
        lambda: bootstrap_group_means(
            data["language"] * 5 + data["domain"],
            per_item,
            n_groups=L * 5,
            resamples=args.resamples,
            seed=args.seed,
        ),
        totals=totals,
    )

    def alphas() -> list[Any]:
        out = []
        lang_of_judgment = np.tile(data["language"], args.raters)
        for lang in range(L):
            mask = lang_of_judgment == lang
            out.append(
                alpha_with_ci(
                    unit=item[mask],
                    value=score[mask] - 1,
                    domain=[1, 2, 3, 4, 5],
                    level="ordinal",
                    resamples=args.resamples,
                    seed=args.seed,
                    package=False,
                )
            )
        return out

    results, _ = measure(f"alpha with CI per language ({L} languages)", alphas, totals=totals)
    print(
        f"   rating project, all steps: {sum(t[0] for t in totals):.3f} s wall, "
        f"{sum(t[1] for t in totals):.3f} s CPU"
    )
    changes = by_model.change_verdict[:, 1:]
    print(
        f"   {int((changes == 1).sum())} of {changes.size} version-to-version changes called better, "
        f"{int((changes == -1).sum())} worse; alpha of {LANGUAGES[0]}: {results[0].alpha:.3f} "
        f"[{results[0].ci[0]:.3f}, {results[0].ci[1]:.3f}]"
    )

    # Pairwise: each item compares two versions; the later one tends to win.
    rng = np.random.default_rng(args.seed + 7)
    left = data["version"]
    right = (left + rng.integers(1, V, n_items)) % V
    p_left = 1 / (1 + np.exp(-(left - right) * 0.15))
    share = (rng.random((args.raters, n_items)) < p_left).mean(axis=0)

    def bt_all() -> list[Any]:
        return [
            bradley_terry_bootstrap(
                left[m], right[m], share[m], n_models=V, resamples=args.resamples, seed=args.seed
            )
            for m in (data["language"] == lang for lang in range(L))
        ]

    fits, _ = measure(
        f"pairwise: Bradley–Terry per language ({V} versions, CIs)", bt_all, totals=totals
    )
    print(
        f"   pairwise project (all steps above and Bradley–Terry): {sum(t[0] for t in totals):.3f} s wall, "
        f"{sum(t[1] for t in totals):.3f} s CPU"
    )
    print(
        f"   {LANGUAGES[0]}: strongest version v{int(np.nanargmax(fits[0].strength))}, "
        f"strength CI width {float(np.nanmean(fits[0].ci[:, 1] - fits[0].ci[:, 0])):.3f}"
    )


def _load(args: argparse.Namespace) -> Any:
    """Items and historical judgments by bulk_create (the import's validation is not what
    this measures); model versions registered with release dates."""
    import datetime

    import numpy as np
    from django.core.management import call_command
    from django.db import transaction

    from annotation.model_versions import model_versions_register
    from annotation.models import ExternalRater, Item, Judgment, ModelVersion, TaskType
    from annotation.projects import project_create_or_update

    call_command("migrate", interactive=False, verbosity=0)
    sub = argparse.Namespace(**{**vars(args), "judgments": args.db_judgments})
    data = _generate(sub)
    tags = list(LANGUAGES[: args.languages])
    project, _ = project_create_or_update(
        slug="bench-progress",
        task_type=TaskType.RATING,
        languages=tags,
        schema={"scale": {"min": 1, "max": 5, "labels": {}}, "issues": []},
        overlap=args.raters,
    )
    languages = {lang.tag: lang for lang in project.languages.all()}
    names = [f"model-v{v:02d}" for v in range(args.versions)]
    model_versions_register(project=project, names=names)
    for v, name in enumerate(names):
        ModelVersion.objects.filter(project=project, name=name).update(
            released_on=datetime.date(2024, 1, 1) + datetime.timedelta(days=20 * v)
        )
    start = datetime.datetime.fromisoformat(START_DAY).replace(tzinfo=datetime.UTC)
    with transaction.atomic():
        raters = ExternalRater.objects.bulk_create(
            [ExternalRater(project=project, external_id=f"r{k}") for k in range(args.raters)]
        )
        chunk = 20_000
        for lo in range(0, data["n_items"], chunk):
            hi = min(data["n_items"], lo + chunk)
            items = Item.objects.bulk_create(
                [
                    Item(
                        project=project,
                        language=languages[tags[int(data["language"][u])]],
                        external_id=f"u{u}",
                        response="…",
                        content_hash=f"{u:064x}",
                        status="done",
                        open_slots=0,
                        model=names[int(data["version"][u])],
                        metadata={"domain": f"d{int(data['domain'][u])}"},
                    )
                    for u in range(lo, hi)
                ],
                batch_size=2000,
            )
            Judgment.objects.bulk_create(
                [
                    Judgment(
                        item=it,
                        external_rater=raters[r],
                        kind="historical",
                        value={"score": int(data["ratings"][r, u])},
                        created_at=start + datetime.timedelta(weeks=int(data["week"][u]), hours=r),
                    )
                    for it, u in zip(items, range(lo, hi), strict=True)
                    for r in range(args.raters)
                ],
                batch_size=5000,
            )
    return project, np


def part_db(args: argparse.Namespace) -> None:
    print(
        f"\n2. database: {args.db_judgments:,} judgments ({'PostgreSQL' if args.database_url else 'SQLite'})",
        flush=True,
    )
    (project, _), _ = measure("setup: migrate and load (not the measure)", lambda: _load(args))
    from django.urls import reverse

    from annotation.progress import progress_report

    # A web process has its URL configuration loaded; importing it here (seconds: it pulls
    # in scipy.stats through active_learning) is not part of the report.
    reverse("annotation:progress", args=["bench-progress"])

    for by in ("model", "period"):
        report, _ = measure(
            f"progress_report(by={by!r}), {args.resamples:,} resamples",
            lambda by=by: progress_report(
                project=project, by=by, resamples=args.resamples, seed=args.seed
            ),
        )
        row = report["languages"][0]
        last = row["series"][-1]
        print(
            f"   {row['language']}: {len(report['keys'])} keys, latest {last['key']} quality "
            f"{last['value']:.3f} [{last['ci'][0]:.3f}, {last['ci'][1]:.3f}], actions "
            f"{[a['code'] for a in row['actions']]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--judgments", type=int, default=1_000_000, help="part 1 judgments (default 1000000)"
    )
    parser.add_argument(
        "--db-judgments", type=int, default=100_000, help="part 2 judgments (default 100000)"
    )
    parser.add_argument("--raters", type=int, default=3, help="judgments per item (default 3)")
    parser.add_argument(
        "--languages", type=int, default=10, help=f"languages (1–{len(LANGUAGES)}, default 10)"
    )
    parser.add_argument("--versions", type=int, default=20, help="model versions (default 20)")
    parser.add_argument("--weeks", type=int, default=26, help="weeks of judging (default 26)")
    parser.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-db", action="store_true", help="part 1 only")
    parser.add_argument(
        "--database-url", help="PostgreSQL server for part 2 (a scratch database is created)"
    )
    args = parser.parse_args()
    if (
        args.judgments < 100
        or args.db_judgments < 100
        or args.raters < 2
        or args.versions < 2
        or args.weeks < 2
        or args.resamples < 0
        or not 1 <= args.languages <= len(LANGUAGES)
    ):
        parser.error(
            "need ≥ 100 judgments, ≥ 2 raters, versions and weeks, ≥ 0 resamples, "
            f"1–{len(LANGUAGES)} languages"
        )
    print(f"bench/progress.py on {machine_description()}")
    database_url = None if args.skip_db else args.database_url
    with django_on_scratch_database(database_url, name="progress", script="bench/progress.py"):
        part_arrays(args)
        if not args.skip_db:
            part_db(args)
    print(f"\npeak resident memory of the process: {peak_memory_mb():.0f} MiB")


if __name__ == "__main__":
    main()
