#!/usr/bin/env python
"""Agreement benchmark: Krippendorff's alpha with a bootstrap CI, and the parity report.

Two parts, each printed with its seconds and peak memory:

1. alpha: U units × R raters on a K-point scale with a share of values missing, alpha at
   the chosen level plus a B-resample bootstrap CI (annotation.agreement.alpha_with_ci),
   beside the `krippendorff` package alone for the point estimate;
2. report: the same data stored as historical judgments in L languages of one project
   (a scratch SQLite file, or a scratch PostgreSQL database with --database-url), then
   annotation.agreement.parity_report and agreement_report(by="language") on it.

The target on the 2-core reference machine: under 5 s for part 1 at the defaults
(100,000 units × 3 raters, 10% missing, 1,000 resamples). Run small while others work:

    .venv/bin/python bench/agreement.py --units 10000 --resamples 200 --languages 3
    .venv/bin/python bench/agreement.py                      # full size (the lead, quiet machine)
    .venv/bin/python bench/agreement.py --skip-report        # part 1 only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and bench/queue.py would hide
# the standard library's `queue` (which Django's dependencies import).
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


def _data(args: argparse.Namespace) -> Any:
    import numpy as np

    rng = np.random.default_rng(args.seed)
    truth = rng.integers(1, args.scale + 1, args.units)
    # Each rater gives the true value 70% of the time, otherwise a value at random.
    noisy = rng.random((args.raters, args.units)) < 0.3
    data = np.where(
        noisy, rng.integers(1, args.scale + 1, (args.raters, args.units)), truth
    ).astype(np.float64)
    data[rng.random((args.raters, args.units)) < args.missing] = np.nan
    return data


def part_alpha(args: argparse.Namespace, data: Any) -> None:
    import krippendorff
    import numpy as np

    from annotation.agreement import alpha_with_ci

    domain = list(range(1, args.scale + 1))
    raters, units = np.nonzero(~np.isnan(data))
    values = data[raters, units].astype(np.int64) - 1
    print(
        f"\n1. alpha: {args.units:,} units × {args.raters} raters, {args.scale}-point scale, "
        f"{args.missing:.0%} missing ({len(values):,} values), level {args.level}"
    )
    package, _ = measure(
        "krippendorff.alpha (point estimate only)",
        lambda: krippendorff.alpha(
            reliability_data=data, value_domain=domain, level_of_measurement=args.level
        ),
        trace=True,
    )
    result, _ = measure(
        f"alpha_with_ci ({args.resamples:,} resamples)",
        lambda: alpha_with_ci(
            unit=units,
            value=values,
            domain=domain,
            level=args.level,
            resamples=args.resamples,
            seed=args.seed,
        ),
        trace=True,
    )
    lo, hi = result.ci
    print(
        f"   alpha {result.alpha:.4f} (package {package:.4f}, formula {result.alpha_vectorised:.4f}), "
        f"95% CI [{lo:.4f}, {hi:.4f}], {result.units:,} units, {result.excluded_units:,} excluded"
    )


def _load(args: argparse.Namespace, data: Any) -> Any:
    """Items and historical judgments written with bulk_create (the import path's
    validation is not what this measures)."""
    import numpy as np
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from annotation.models import ExternalRater, Item, Judgment, TaskType
    from annotation.projects import project_create_or_update

    call_command("migrate", interactive=False, verbosity=0)
    tags = list(LANGUAGES[: args.languages])
    project, _ = project_create_or_update(
        slug="bench-agreement",
        task_type=TaskType.RATING,
        languages=tags,
        schema={"scale": {"min": 1, "max": args.scale, "labels": {}}, "issues": []},
        overlap=args.raters,
    )
    languages = {lang.tag: lang for lang in project.languages.all()}
    now = timezone.now()
    rng = np.random.default_rng(args.seed + 1)
    with transaction.atomic():
        raters = ExternalRater.objects.bulk_create(
            [
                ExternalRater(project=project, external_id=f"{tag}-r{k}")
                for tag in tags
                for k in range(args.raters)
            ]
        )
        rater_ids = {
            (r.external_id.rsplit("-r", 1)[0], int(r.external_id.rsplit("-r", 1)[1])): r.pk
            for r in raters
        }
        chunk = 20_000
        for start in range(0, args.units, chunk):
            stop = min(args.units, start + chunk)
            unit_tags = [tags[u % len(tags)] for u in range(start, stop)]
            items = Item.objects.bulk_create(
                [
                    Item(
                        project=project,
                        language=languages[tag],
                        external_id=f"u{u}",
                        response="…",
                        content_hash=f"{u:064x}",
                        status="done",
                        open_slots=0,
                        model=f"model-{int(rng.integers(0, 3))}",
                    )
                    for u, tag in zip(range(start, stop), unit_tags, strict=True)
                ],
                batch_size=2000,
            )
            judgments = []
            for item, u, tag in zip(items, range(start, stop), unit_tags, strict=True):
                for r in range(args.raters):
                    value = data[r, u]
                    if value == value:  # not NaN
                        judgments.append(
                            Judgment(
                                item=item,
                                external_rater_id=rater_ids[(tag, r)],
                                kind="historical",
                                value={"score": int(value)},
                                created_at=now,
                            )
                        )
            Judgment.objects.bulk_create(judgments, batch_size=5000)
    return project


def part_report(args: argparse.Namespace, data: Any) -> None:
    print(
        f"\n2. report: the same judgments in {args.languages} languages "
        f"({'PostgreSQL' if args.database_url else 'SQLite'})",
        flush=True,
    )
    project, _ = measure("setup: migrate and load (not the measure)", lambda: _load(args, data))
    from annotation.agreement import agreement_report, parity_report

    report, _ = measure(
        f"parity_report ({args.resamples:,} resamples)",
        lambda: parity_report(project=project, resamples=args.resamples, seed=args.seed),
    )
    measure(
        f"agreement_report(by='language') ({args.resamples:,})",
        lambda: agreement_report(
            project=project, by="language", resamples=args.resamples, seed=args.seed
        ),
    )
    for row in report["languages"][:3]:
        lo, hi = row["ci"]
        print(
            f"   {row['language']}: alpha {row['alpha']:.4f} [{lo:.4f}, {hi:.4f}], quality "
            f"{row['quality']['value']:.3f}, {row['judgments']:,} judgments"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=100_000, help="units (items), default 100000")
    parser.add_argument("--raters", type=int, default=3, help="raters per unit, default 3")
    parser.add_argument(
        "--missing", type=float, default=0.1, help="share of values missing, default 0.1"
    )
    parser.add_argument(
        "--scale", type=int, default=5, help="points of the rating scale, default 5"
    )
    parser.add_argument(
        "--level", default="ordinal", choices=("nominal", "ordinal", "interval", "ratio")
    )
    parser.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap resamples, default 1000"
    )
    parser.add_argument(
        "--languages", type=int, default=10, help=f"languages in the report (1–{len(LANGUAGES)})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-report", action="store_true", help="part 1 only (no database)")
    parser.add_argument(
        "--database-url", help="PostgreSQL server for part 2 (a scratch database is created)"
    )
    args = parser.parse_args()
    if (
        args.units < 10
        or args.raters < 2
        or not 0 <= args.missing < 1
        or args.scale < 2
        or args.resamples < 0
    ):
        parser.error(
            "need --units ≥ 10, --raters ≥ 2, 0 ≤ --missing < 1, --scale ≥ 2, --resamples ≥ 0"
        )
    if not 1 <= args.languages <= len(LANGUAGES):
        parser.error(f"--languages must be between 1 and {len(LANGUAGES)}")
    print(f"bench/agreement.py on {machine_description()}")
    data = _data(args)
    report_on = None if args.skip_report else args.database_url
    with django_on_scratch_database(report_on, name="agreement", script="bench/agreement.py"):
        part_alpha(args, data)
        if not args.skip_report:
            part_report(args, data)
    print(f"\npeak resident memory of the process: {peak_memory_mb():.0f} MiB")


if __name__ == "__main__":
    main()
