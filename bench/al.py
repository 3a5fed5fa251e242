#!/usr/bin/env python
"""Active-learning benchmark: scoring and selection on a large pool, a full round in the
database, and modAL's strategies against the project's vectorised ones.

Three parts, each printed with its seconds and peak memory:

1. select: a synthetic pool of --pool items in --languages languages, with hashed sparse
   features (--nnz non-zeros per item, columns by script), token log-probs and a
   committee trained on --labels labelled items. Timed: scoring the whole pool (token
   NLL and minimum log-prob, committee vote entropy, max disagreement, classifier
   entropy, percentiles within each language, combination), then the parity allocation
   and the per-language batch selection (audit sample, top-uncertainty candidates,
   k-center diversity) of a --batch batch. Target: score + select under 5 s for 1,000,000
   items in 10 languages and a 5,000-item batch.
2. modal: modAL's vote entropy, KL max disagreement and classifier entropy against the
   vectorised formulas on --modal-pool items, their ratio, and whether the top picks are
   the same.
4. workers: a round's pool scoring as the chord's workers do it — `rounds.pool_score`
   on chunks of --chunk items (hashing features, glass-box and source–output features,
   token scorers, the committee and the quality model) in 1 and in 2 worker processes,
   --workers-pool items (default 1,000,000) — and the projection to 100,000,000 items.
   The chunks come from memory, not the database (a worker's read of its chunk is not in
   the figure); Celery's own transport is not either (a chunk's message is its ids).
3. round: a real round (`round_execute`) on --round-items pool items stored in a
   database (a scratch SQLite file, or a scratch PostgreSQL database with
   --database-url), hashing features computed from the texts, committee trained on
   stored historical judgments, items queued. Target: under 60 s for 100,000 items.

Run small while others work; the full size is the default:

    .venv/bin/python bench/al.py --pool 100000 --batch 1000 --modal-pool 20000 --round-items 10000
    .venv/bin/python bench/al.py --database-url postgres://postgres@127.0.0.1:5432/postgres   # full size
    .venv/bin/python bench/al.py --skip-round --skip-modal                                       # part 1 only
    .venv/bin/python bench/al.py --skip-select --skip-modal --skip-round --workers-pool 1000000  # part 4 only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and bench/queue.py would hide
# the standard library's `queue` (which Django's dependencies import).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._util import (  # noqa: E402
    django_on_scratch_database,
    machine_description,
    measure,
    peak_memory_mb,
)

LANGUAGES = ("de", "ar", "zh", "hi", "sw", "ru", "ja", "th", "am", "he", "ko", "el")
# A few letters of each language's script, to make texts whose n-grams differ by script.
ALPHABETS = {
    "de": "abcdefghijklmnopqrstuvwxyzäöüß",
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "zh": "的一是不了人我在有他这中大来上国个到说们",
    "hi": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशसह",
    "sw": "abcdefghijklmnoprstuvwyz",
    "ru": "абвгдежзийклмнопрстуфхцчшщыэюя",
    "ja": "あいうえおかきくけこさしすせそたちつてとなにぬねの",
    "th": "กขคงจฉชซญดตถทธนบปผพฟภมยรลวศสหอ",
    "am": "ሀለሐመሠረሰቀበተኀነአከወዐዘየደገጠጰጸፀፈፐ",
    "he": "אבגדהוזחטיכלמנסעפצקרשת",
    "ko": "가나다라마바사아자차카타파하",
    "el": "αβγδεζηθικλμνξοπρστυφχψω",
}


# ---------------------------------------------------------------------------------------
# 1. Scoring and selection on a synthetic pool
# ---------------------------------------------------------------------------------------


def _synthetic_pool(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from scipy import sparse

    from active_learning.features import HASHING_FEATURES

    rng = np.random.default_rng(args.seed)
    n, langs = args.pool, LANGUAGES[: args.languages]
    language_index = rng.integers(0, len(langs), n)
    # Each script hashes into its own stretch of columns (as real n-grams of different scripts do).
    span = HASHING_FEATURES // len(langs)
    columns = (
        (language_index[:, None] * span + rng.integers(0, span, (n, args.nnz)))
        .ravel()
        .astype(np.int32)
    )
    features = sparse.csr_matrix(
        (
            np.full(n * args.nnz, 1 / np.sqrt(args.nnz), dtype=np.float32),
            columns,
            np.arange(0, n * args.nnz + 1, args.nnz),
        ),
        shape=(n, HASHING_FEATURES),
    )
    lengths = rng.integers(8, 40, n)
    flat = -rng.exponential(0.4, int(lengths.sum()))
    token_logprobs = np.split(flat, np.cumsum(lengths)[:-1])
    keys = rng.integers(0, 2**62, n)
    duplicates = rng.random(n) < 0.01
    keys[duplicates] = keys[rng.integers(0, n, int(duplicates.sum()))]
    labelled = rng.choice(n, args.labels, replace=False)
    direction = rng.normal(size=HASHING_FEATURES).astype(np.float32)
    y = (features[labelled] @ direction + rng.normal(0, 0.3, args.labels) > 0).astype(np.int64)
    return {
        "languages": np.array(langs, dtype=object)[language_index],
        "features": features,
        "token_logprobs": token_logprobs,
        "keys": keys,
        "labelled": labelled,
        "y": y,
        "quality": {
            tag: float(q) for tag, q in zip(langs, rng.uniform(0.5, 0.9, len(langs)), strict=True)
        },
    }


def part_select(args: argparse.Namespace) -> None:
    import numpy as np

    from active_learning import committee as committee_mod
    from active_learning.allocation import LanguageSupply, allocation_compute
    from active_learning.parameters import DEFAULT_PARAMETERS
    from active_learning.rounds import picks_for_language
    from active_learning.scorers import ScoringInputs, group_indices, scores_combine, scores_compute

    print(
        f"\n1. select: {args.pool:,} items in {args.languages} languages, {args.nnz} non-zeros each, "
        f"batch {args.batch:,}, committee on {args.labels:,} labels"
    )
    pool, _ = measure("setup: synthetic pool (not the measure)", lambda: _synthetic_pool(args))
    fitted, _ = measure(
        "committee fit (5 members + classifier)",
        lambda: committee_mod.committee_fit(
            pool["features"][pool["labelled"]], pool["y"], seed=args.seed
        ),
    )

    def score() -> Any:
        inputs = ScoringInputs(
            languages=pool["languages"],
            token_logprobs=pool["token_logprobs"],
            features=pool["features"],
            committee=fitted,
        )
        raw = scores_compute(inputs=inputs)
        return scores_combine(raw=raw, groups=pool["languages"])

    (combined, pct), t_score = measure(
        f"score {args.pool:,} items ({5} scorers, percentiles, combine)", score
    )

    def select() -> list[Any]:
        tags = list(pool["quality"])
        counts = dict(zip(*np.unique(pool["languages"], return_counts=True), strict=True))
        supplies = [
            LanguageSupply(tag=t, pool=int(counts.get(t, 0)), quality=pool["quality"][t])
            for t in tags
        ]
        allocation = allocation_compute(
            languages=supplies, budget=args.batch, strategy="parity", seed=args.seed
        )
        by_language = group_indices(pool["languages"])
        picks = []
        for alloc in allocation:
            idx = by_language[alloc.tag]
            chosen, _ = picks_for_language(
                allocation=alloc,
                idx=idx,
                combined=combined,
                features=pool["features"],
                keys=pool["keys"],
                parameters=DEFAULT_PARAMETERS,
                seed=args.seed,
            )
            picks += chosen
        return picks

    picks, t_select = measure(f"allocate (parity) and select a {args.batch:,}-item batch", select)
    print(
        f"   picked {len(picks):,} items ({sum(p.selection == 'audit' for p in picks):,} audit); "
        f"score + select {t_score + t_select:.2f} s (target < 5 s at 1,000,000 items)"
    )


# ---------------------------------------------------------------------------------------
# 2. modAL against the vectorised measures
# ---------------------------------------------------------------------------------------


def part_modal(args: argparse.Namespace) -> None:
    import numpy as np

    from active_learning import committee as committee_mod

    print(
        f"\n2. modal: modAL's strategies against the vectorised ones on {args.modal_pool:,} items"
    )
    small = argparse.Namespace(**{**vars(args), "pool": args.modal_pool})
    pool = _synthetic_pool(small)
    fitted = committee_mod.committee_fit(
        pool["features"][pool["labelled"]], pool["y"], seed=args.seed
    )
    X = pool["features"]
    modal_fns = {
        "vote_entropy": committee_mod.modal_vote_entropy,
        "max_disagreement": committee_mod.modal_max_disagreement,
        "classifier_entropy": committee_mod.modal_classifier_entropy,
    }
    k = min(args.batch, args.modal_pool // 10)
    totals = {"modal": 0.0, "vectorised": 0.0}
    for name, ours in committee_mod.VECTORISED.items():
        theirs, t_modal = measure(f"modAL {name}", lambda fn=modal_fns[name]: fn(fitted, X))
        fitted._last = None  # no decision values left over from the measure before: a fair time
        mine, t_ours = measure(f"vectorised {name}", lambda fn=ours: fn(fitted, X))
        ordered = np.sort(mine)[::-1]
        n = k
        while n < len(ordered) and ordered[n - 1] == ordered[n]:
            n += 1
        same = set(committee_mod.top_k(mine, n).tolist()) == set(
            committee_mod.top_k(theirs, n).tolist()
        )
        totals["modal"] += t_modal
        print(
            f"   {name}: modAL / vectorised = {t_modal / max(t_ours, 1e-9):.1f}×, "
            f"max |difference| {float(np.max(np.abs(mine - theirs))):.2e}, same top {n:,} picks: {same}"
        )

    def all_three() -> None:
        # As a round scores: the three measures share one product of the pool with every member.
        fitted._last = None
        for fn in committee_mod.VECTORISED.values():
            fn(fitted, X)

    _, totals["vectorised"] = measure(
        "vectorised, all three in a row (one shared product)", all_three
    )
    print(
        f"   all three: modAL {totals['modal']:.2f} s, vectorised {totals['vectorised']:.2f} s, "
        f"ratio {totals['modal'] / max(totals['vectorised'], 1e-9):.1f}×"
    )


# ---------------------------------------------------------------------------------------
# 3. A full round in the database
# ---------------------------------------------------------------------------------------


def _text(rng: Any, alphabet: str) -> str:
    words = [
        "".join(rng.choice(list(alphabet), rng.integers(2, 9))) for _ in range(rng.integers(6, 18))
    ]
    return " ".join(words)


def _load_round(args: argparse.Namespace) -> Any:
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from annotation.models import ExternalRater, Item, ItemStatus, Judgment, Language, TaskType
    from annotation.projects import project_create_or_update
    from annotation.qualification import qualification_grant

    call_command("migrate", interactive=False, verbosity=0)
    tags = list(LANGUAGES[: args.languages])
    project, _ = project_create_or_update(
        slug="bench-al",
        task_type=TaskType.RATING,
        languages=tags,
        schema={"scale": {"min": 0, "max": 100, "labels": {}}, "issues": []},
        overlap=3,
        queue_on_import=False,
    )
    languages = {lang.tag: lang for lang in Language.objects.filter(tag__in=tags)}
    for tag in tags:
        for k in range(3):
            user = get_user_model()(username=f"{tag}-{k}")
            user.set_unusable_password()  # hashing real passwords would dominate the set-up
            user.save()
            qualification_grant(project=project, evaluator=user, language=languages[tag])
    rng = np.random.default_rng(args.seed)
    now = timezone.now()
    total = args.round_items + args.round_labels
    rows = []
    for n in range(total):
        tag = tags[n % len(tags)]
        rows.append(
            Item(
                project=project,
                language=languages[tag],
                external_id=f"b{n}",
                response=_text(rng, ALPHABETS[tag]),
                token_logprobs=np.round(
                    -rng.exponential(0.4, int(rng.integers(8, 40))), 4
                ).tolist(),
                status=ItemStatus.POOL if n < args.round_items else ItemStatus.DONE,
                open_slots=0,
                content_hash=f"{n:064x}",
                created_at=now,
                updated_at=now,
            )
        )
    with transaction.atomic():
        Item.objects.bulk_create(rows, batch_size=5000)
        rater = ExternalRater.objects.create(project=project, external_id="bench-rater")
        done = Item.objects.filter(project=project, status=ItemStatus.DONE).values_list(
            "pk", flat=True
        )
        Judgment.objects.bulk_create(
            [
                Judgment(
                    item_id=pk,
                    external_rater=rater,
                    kind="historical",
                    value={"score": int(rng.integers(0, 101))},
                )
                for pk in done
            ],
            batch_size=5000,
        )
    return project


def part_round(args: argparse.Namespace) -> None:
    from active_learning.rounds import round_execute, round_request_clean

    print(
        f"\n3. round: {args.round_items:,} pool items in {args.languages} languages in the database "
        f"({args.round_labels:,} labelled), budget {args.round_budget:,}"
    )
    project, _ = measure("setup: migrate and load (not the measure)", lambda: _load_round(args))

    def run() -> Any:
        request = round_request_clean(
            project=project,
            budget=args.round_budget,
            strategy="parity",
            seed=args.seed,
            parameters={"evaluator_capacity": None},
        )
        return round_execute(request=request)

    selection_round, seconds = measure(
        "full round (validate, features, committee, score, select, queue)", run
    )
    steps = ", ".join(
        f"{k} {v:.2f} s" for k, v in selection_round.summary["seconds"].items() if k != "total"
    )
    version = selection_round.model_version
    print(f"   {steps}")
    print(
        f"   queued {selection_round.summary['selected']:,} items; scorers {', '.join(selection_round.summary['scorers'])}; "
        f"model v{version.number if version else '-'}; {seconds:.1f} s (target < 60 s at 100,000 items)"
    )


# ---------------------------------------------------------------------------------------
# 4. Scoring in chunks on 1 and 2 workers
# ---------------------------------------------------------------------------------------

_WORKER_POOL: dict[str, Any] = {}


def _vocabulary(rng: Any, alphabet: str, size: int = 3000) -> list[str]:
    letters = list(alphabet)
    return ["".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(size)]


def _worker_pool(args: argparse.Namespace) -> dict[str, Any]:
    """Texts, prompts and token log-probs of a synthetic pool: words from a per-script vocabulary."""
    import numpy as np

    rng = np.random.default_rng(args.seed)
    n, langs = args.workers_pool, LANGUAGES[: args.languages]
    vocab = {tag: _vocabulary(rng, ALPHABETS[tag]) for tag in langs}
    english = _vocabulary(rng, ALPHABETS["de"])
    language_index = rng.integers(0, len(langs), n)
    lengths = rng.integers(6, 18, n)
    words = rng.integers(0, 3000, int(lengths.sum()))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    texts, prompts = [], []
    for i in range(n):
        table = vocab[langs[language_index[i]]]
        chunk = words[bounds[i] : bounds[i + 1]]
        texts.append(" ".join(table[w] for w in chunk))
        prompts.append(" ".join(english[w] for w in chunk[::-1]))
    token_lengths = rng.integers(8, 40, n)
    flat = -rng.exponential(0.4, int(token_lengths.sum()))
    return {
        "languages": np.array(langs, dtype=object)[language_index],
        "texts": texts,
        "prompts": prompts,
        "token_logprobs": np.split(flat, np.cumsum(token_lengths)[:-1]),
    }


def _worker_models(pool: dict[str, Any], labels: int, seed: int) -> Any:
    import numpy as np

    from active_learning import committee as committee_mod
    from active_learning import qe
    from active_learning.features import hashing_features
    from active_learning.training import RoundModels

    rng = np.random.default_rng(seed)
    rows = rng.choice(len(pool["texts"]), labels, replace=False)
    nll = np.array([-pool["token_logprobs"][r].mean() for r in rows])
    bad = nll + rng.normal(0, 0.2, labels) > np.median(nll)
    committee = committee_mod.committee_fit(
        hashing_features([pool["texts"][r] for r in rows]), bad.astype(int), seed=seed
    )
    raw = qe.qe_features(
        prompts=[pool["prompts"][r] for r in rows],
        responses=[pool["texts"][r] for r in rows],
        token_logprobs=[pool["token_logprobs"][r] for r in rows],
    )
    quality = qe.badness_fit(
        raw=raw, languages=pool["languages"][rows], labelled=np.arange(labels), bad=bad
    )
    return RoundModels(version=None, committee=committee, quality=quality)


def _score_chunk(bounds: tuple[int, int]) -> tuple[int, float, float]:
    """One worker's chunk: what `round_runs.round_chunk_score` does after reading the chunk."""
    import numpy as np

    from active_learning.features import hashing_features
    from active_learning.parameters import DEFAULT_PARAMETERS
    from active_learning.rounds import Pool, pool_score
    from active_learning.scorers import ScoringInputs

    lo, hi = bounds
    data = _WORKER_POOL
    started, cpu = time.perf_counter(), time.process_time()
    languages = data["languages"][lo:hi]
    texts, prompts = data["texts"][lo:hi], data["prompts"][lo:hi]
    pool = Pool(
        ids=np.arange(lo, hi),
        languages=languages,
        prompts=prompts,
        texts=texts,
        inputs=ScoringInputs(
            languages=languages, token_logprobs=list(data["token_logprobs"][lo:hi])
        ),
    )
    scores = pool_score(
        pool=pool,
        features=hashing_features(texts),
        models=data["models"],
        parameters=DEFAULT_PARAMETERS,
    )
    assert set(scores.raw) >= {"nll", "predicted_bad", "committee_vote_entropy"}, sorted(scores.raw)
    return hi - lo, time.perf_counter() - started, time.process_time() - cpu


def part_workers(args: argparse.Namespace) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    n = args.workers_pool
    print(
        f"\n4. workers: scoring {n:,} items in chunks of {args.chunk:,} on 1 and 2 worker processes"
    )
    pool, _ = measure("setup: synthetic pool (not the measure)", lambda: _worker_pool(args))
    models, _ = measure(
        "setup: committee and quality model (not the measure)",
        lambda: _worker_models(pool, args.labels, args.seed),
    )
    _WORKER_POOL.clear()
    _WORKER_POOL.update(pool, models=models)  # forked workers inherit it: no pickling of the pool
    chunks = [(lo, min(n, lo + args.chunk)) for lo in range(0, n, args.chunk)]
    context = mp.get_context("fork")
    figures = {}
    cpu_per_item = 0.0
    for workers in (1, 2):

        def run(workers: int = workers) -> list[tuple[int, float, float]]:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as executor:
                return list(executor.map(_score_chunk, chunks))

        done, wall = measure(f"score {n:,} items on {workers} worker(s)", run)
        chunk_seconds = sorted(s for _, s, _ in done)
        cpu = sum(c for _, _, c in done)
        figures[workers] = wall
        cpu_per_item = cpu / n if workers == 1 else cpu_per_item
        print(
            f"   wall: {n / wall:,.0f} items/s; per chunk of {args.chunk:,}: median "
            f"{chunk_seconds[len(chunk_seconds) // 2]:.2f} s, max {chunk_seconds[-1]:.2f} s; "
            f"CPU: {cpu:.1f} s in all, {1000 * cpu / n:.3f} s per 1,000 items ({n / cpu:,.0f} items per CPU-second)"
        )
    print(
        f"   speed-up on 2 workers: {figures[1] / figures[2]:.2f}× wall (the machine's cores are shared with "
        f"other work; load average {os.getloadavg()[0]:.1f})"
    )
    print(
        "   projected at the measured CPU cost, one dedicated core per worker, chunks spread evenly:"
    )
    for target in (1_000_000, 100_000_000):
        cells = ", ".join(
            f"{workers} worker(s) {target * cpu_per_item / workers / 60:,.1f} min"
            for workers in (1, 2, 16, 64)
        )
        print(f"   {target:>11,} items: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pool",
        type=int,
        default=1_000_000,
        help="items in the synthetic pool (default 1,000,000)",
    )
    parser.add_argument(
        "--languages", type=int, default=10, help=f"languages (1–{len(LANGUAGES)}, default 10)"
    )
    parser.add_argument("--batch", type=int, default=5000, help="batch to select (default 5,000)")
    parser.add_argument(
        "--nnz", type=int, default=40, help="non-zero features per synthetic item (default 40)"
    )
    parser.add_argument(
        "--labels", type=int, default=2000, help="labelled items for the committee (default 2,000)"
    )
    parser.add_argument(
        "--modal-pool", type=int, default=1_000_000, help="items for part 2 (default 1,000,000)"
    )
    parser.add_argument(
        "--round-items", type=int, default=100_000, help="pool items for part 3 (default 100,000)"
    )
    parser.add_argument(
        "--round-labels", type=int, default=2000, help="labelled items for part 3 (default 2,000)"
    )
    parser.add_argument(
        "--round-budget", type=int, default=5000, help="budget of the part 3 round (default 5,000)"
    )
    parser.add_argument(
        "--workers-pool",
        type=int,
        default=1_000_000,
        help="items scored in chunks on 1 and 2 workers in part 4 (default 1,000,000)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=50_000,
        help="items per scoring chunk in part 4 (default 50,000)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-select", action="store_true")
    parser.add_argument("--skip-modal", action="store_true")
    parser.add_argument("--skip-round", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument(
        "--database-url", help="PostgreSQL server for part 3 (a scratch database is created)"
    )
    args = parser.parse_args()
    if not 1 <= args.languages <= len(LANGUAGES):
        parser.error(f"--languages must be between 1 and {len(LANGUAGES)}")
    if min(args.pool, args.modal_pool, args.round_items) < 100 or args.batch < 1 or args.nnz < 1:
        parser.error("need --pool, --modal-pool, --round-items ≥ 100, --batch ≥ 1, --nnz ≥ 1")
    if args.labels < 20 or args.labels > args.pool // 2 or args.labels > args.modal_pool // 2:
        parser.error("--labels must be at least 20 and at most half of --pool and --modal-pool")
    if (
        args.batch > args.pool // 2
        or args.round_budget > args.round_items
        or args.round_labels < 20
    ):
        parser.error(
            "--batch must be at most half of --pool, --round-budget at most --round-items, --round-labels ≥ 20"
        )
    print(f"bench/al.py on {machine_description()}")
    database_url = None if args.skip_round else args.database_url
    with django_on_scratch_database(
        database_url, name="al", script="bench/al.py", CELERY_BROKER_URL=""
    ):
        _run(args)
    print(f"\npeak resident memory of the process: {peak_memory_mb():.0f} MiB")


def _run(args: argparse.Namespace) -> None:
    if not args.skip_select:
        part_select(args)
    if not args.skip_modal:
        part_modal(args)
    if not args.skip_round:
        part_round(args)
    if not args.skip_workers:
        part_workers(args)


if __name__ == "__main__":
    main()
