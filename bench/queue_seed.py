"""The queue benchmark's set-up and checks, shared by bench/queue.py and bench/load.py:
the environment it serves with, the project, the evaluators of each mode and N items
loaded by COPY; how many statements a claim and a submit run and the claim's query plans;
and the invariants checked after a run."""

from __future__ import annotations

import random
import time
from typing import Any

from bench._util import served_environment

PROJECT_SLUG = "bench-queue"
PASSWORD = "bench-" + "queue-password"  # noqa: S105 - a throwaway account in a throwaway database
SAMPLE_TEXT = {
    "de": (
        "The weather will be sunny tomorrow in most regions.",
        "Morgen wird es in den meisten Regionen sonnig.",
    ),
    "ar": (
        "The weather will be sunny tomorrow in most regions.",
        "سيكون الطقس مشمسًا غدًا في معظم المناطق.",
    ),
    "zh": ("The weather will be sunny tomorrow in most regions.", "明天大部分地区天气晴朗。"),
    "hi": (
        "The weather will be sunny tomorrow in most regions.",
        "कल अधिकांश क्षेत्रों में मौसम धूप वाला रहेगा।",
    ),
    "sw": (
        "The weather will be sunny tomorrow in most regions.",
        "Hali ya hewa itakuwa ya jua kesho katika maeneo mengi.",
    ),
    "ja": (
        "The weather will be sunny tomorrow in most regions.",
        "明日はほとんどの地域で晴れるでしょう。",
    ),
    "he": ("The weather will be sunny tomorrow in most regions.", "מחר יהיה שמשי ברוב האזורים."),
    "th": ("The weather will be sunny tomorrow in most regions.", "พรุ่งนี้อากาศจะแจ่มใสในเกือบทุกภูมิภาค"),
}


# Each mode works with its own evaluators: service (as fast as they can), paced (service
# at a fixed total rate), http (the pages, through gunicorn), rest (the API, through gunicorn).
MODES = ("service", "paced", "http", "rest")


def queue_environment(database_url: str) -> dict[str, str]:
    """The served environment (bench._util.served_environment) with the limits a queue run
    lifts."""
    return served_environment(
        database_url,
        # An evaluator's session may call the API 600 times a minute by default; 32 bench
        # evaluators each go faster than any person, and the run measures the server.
        API_USER_RATE="1000000/min",
        # Deployed, a worker renews its connection each minute (DB_CONN_MAX_AGE=60); here a
        # connection lives through the run, so each mode's PostgreSQL CPU, read from the
        # backends' /proc entries, is not lost with a backend that ends mid-run.
        DB_CONN_MAX_AGE="3600",
    )


def seed(
    *, items: int, languages: list[str], evaluators: int, overlap: int, per_evaluator: int
) -> dict[str, Any]:
    """Migrate, create the project, C evaluators per mode and N items via COPY."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command

    from annotation.languages import language_get_or_create
    from annotation.models import (
        Item,
        ItemStatus,
        Project,
        Qualification,
        QualificationStatus,
        TaskType,
    )
    from annotation.qualification import evaluator_profile_ensure
    from annotation.schema import schema_validate

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    t_migrate = time.perf_counter() - t0

    langs = [language_get_or_create(tag=tag) for tag in languages]
    project = Project.objects.create(
        slug=PROJECT_SLUG,
        name="Queue benchmark",
        task_type=TaskType.RATING,
        schema=schema_validate(task_type=TaskType.RATING, schema=None),
        overlap=overlap,
        # Long leases: a lease expiring mid-run would be a bench artefact, not load.
        lease_seconds=3600,
    )
    project.languages.set(langs)

    User = get_user_model()
    password = make_password(PASSWORD)  # hashed once: PBKDF2 per user would take minutes
    User.objects.bulk_create(
        [
            User(username=f"bench-{mode}-{i}", password=password)
            for mode in MODES
            for i in range(evaluators)
        ]
    )
    users = list(User.objects.filter(username__startswith="bench-").order_by("pk"))
    roster: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    qualifications = []
    for user in users:
        _, mode, index = user.username.split("-")
        i = int(index)
        # Evaluator i works language i mod L (and the next ones with --languages-per-evaluator).
        mine = [langs[(i + j) % len(langs)] for j in range(min(per_evaluator, len(langs)))]
        qualifications += [
            Qualification(
                evaluator=user, project=project, language=lang, status=QualificationStatus.QUALIFIED
            )
            for lang in mine
        ]
        evaluator_profile_ensure(user=user)
        roster[mode].append(
            {
                "id": user.pk,
                "username": user.username,
                "tag": mine[0].tag if per_evaluator == 1 else "",
            }
        )
    Qualification.objects.bulk_create(qualifications)

    t0 = time.perf_counter()
    _items_copy(
        project=project,
        languages=langs,
        n=items,
        overlap=overlap,
        Item=Item,
        status=ItemStatus.QUEUED,
    )
    filled_tables_vacuum_analyze()
    t_items = time.perf_counter() - t0
    return {"project_id": project.pk, "roster": roster, "t_migrate": t_migrate, "t_items": t_items}


def filled_tables_vacuum_analyze() -> None:
    """VACUUM ANALYZE the tables that hold rows, as autovacuum would have long before on a
    live database (left to autovacuum, it runs during the first timed mode and its CPU is
    counted there).

    Not the empty ones (assignments, judgments, …): analysed, a table is known to be empty,
    and the generic plans that a gunicorn worker's prepared statements settle on in its first
    requests, on a connection kept through the run (DB_CONN_MAX_AGE), then read what the run
    writes there with sequential scans to its end, each dearer than the one before: at
    50 evaluators PostgreSQL's CPU per judgment rose from 2.0 to 3-4 ms over 30 s. A live
    database's tables are not empty, and autovacuum's ANALYZE replans as they grow; left
    unanalysed, a table is sized by the planner from its pages as it fills."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' "
            "AND c.relnamespace = current_schema()::regnamespace AND pg_relation_size(c.oid) > 0 "
            "ORDER BY c.relname"
        )
        filled = [connection.ops.quote_name(name) for (name,) in cursor.fetchall()]
        if filled:
            cursor.execute(f"VACUUM ANALYZE {', '.join(filled)}")


def _items_copy(
    *, project: Any, languages: list[Any], n: int, overlap: int, Item: Any, status: str
) -> None:
    """COPY the items in: every concrete column, prepared by the model's own fields, so new
    columns with defaults need no change here."""
    from django.db import connection
    from django.utils import timezone

    fields = [f for f in Item._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    rng = random.Random(20250301)
    now = timezone.now()
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(
            f"COPY {connection.ops.quote_name(Item._meta.db_table)} ({columns}) FROM STDIN"
        ) as copy,
    ):
        for i in range(n):
            language = languages[i % len(languages)]
            prompt, response = SAMPLE_TEXT.get(language.tag.split("-")[0], SAMPLE_TEXT["de"])
            item = Item(
                project=project,
                language=language,
                external_id=f"bench-{i}",
                prompt=f"Translate (#{i}): {prompt}",
                response=response,
                model="bench-model",
                metadata={"bench": i},
                status=status,
                priority=round(rng.random(), 6),
                open_slots=overlap,
                content_hash=f"{i:064x}",
                created_at=now,
                updated_at=now,
            )
            copy.write_row(
                [f.get_db_prep_save(getattr(item, f.attname), connection) for f in fields]
            )


def queries_per_operation(project_id: int, tag: str) -> tuple[int, int]:
    """How many SQL statements one claim and one submit run (one extra evaluator, rolled back)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Language, Project, Qualification, QualificationStatus
    from annotation.queue import item_claim_next, judgment_submit

    project = Project.objects.get(pk=project_id)
    language = Language.objects.get(tag=tag)
    with transaction.atomic():
        user = get_user_model().objects.create(username="bench-probe")
        Qualification.objects.create(
            evaluator=user, project=project, language=language, status=QualificationStatus.QUALIFIED
        )
        with CaptureQueriesContext(connection) as claim:
            assignment = item_claim_next(evaluator=user, project=project)
        with CaptureQueriesContext(connection) as submit:
            judgment_submit(assignment=assignment, evaluator=user, value={"score": 3}, seconds=10)
        transaction.set_rollback(True)

    def statements(captured: CaptureQueriesContext) -> int:
        # Savepoints come from the probe's own enclosing transaction, not from the service.
        return sum(1 for q in captured.captured_queries if "SAVEPOINT" not in q["sql"])

    return statements(claim), statements(submit)


def explain_claim(project_id: int, evaluator_id: int) -> str:
    """EXPLAIN ANALYZE of the claim's reads of annotation_item, exactly as the service sends
    them (the statements are captured from a real claim, then rolled back)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Project
    from annotation.queue import item_claim_next

    project = Project.objects.get(pk=project_id)
    user = get_user_model().objects.get(pk=evaluator_id)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have by now on a live database
    out = []
    with transaction.atomic():
        with CaptureQueriesContext(connection) as captured:
            item_claim_next(evaluator=user, project=project)
        reads = [
            q["sql"]
            for q in captured.captured_queries
            if q["sql"].lstrip().startswith("SELECT") and "FROM annotation_item i" in q["sql"]
        ]
        with connection.cursor() as cursor:
            for sql in reads:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
                out.append(
                    "    "
                    + " ".join(sql.split())
                    + "\n"
                    + "\n".join("      " + r[0] for r in cursor.fetchall())
                )
        transaction.set_rollback(True)
    return "\n".join(out) or "    (the claim read no item: the queue is empty for this evaluator)"


def stored_judgments(*, mode: str) -> int:
    from annotation.models import Judgment

    return Judgment.objects.filter(evaluator__username__startswith=f"bench-{mode}-").count()


def invariants(*, project_id: int, overlap: int) -> list[str]:
    """What must hold after any run; each broken rule is one line."""
    from django.db import connection
    from django.db.models import Count

    from annotation.models import Judgment

    problems = []
    over = (
        Judgment.objects.filter(item__project_id=project_id, kind="production", is_current=True)
        .values("item_id")
        .annotate(n=Count("id"))
        .filter(n__gt=overlap)
        .count()
    )
    if over:
        problems.append(f"{over} items have more than k={overlap} production judgments")
    twice = (
        Judgment.objects.filter(item__project_id=project_id, is_current=True)
        .values("item_id", "evaluator_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    if twice:
        problems.append(f"{twice} (item, evaluator) pairs were judged twice")
    with connection.cursor() as cursor:
        # open_slots + live leases + submitted production assignments = k for every queued item.
        cursor.execute(
            """
            SELECT count(*) FROM annotation_item i
            LEFT JOIN (
                SELECT item_id, count(*) AS held FROM annotation_assignment
                WHERE kind = 'production' AND status IN ('leased', 'submitted') GROUP BY item_id
            ) a ON a.item_id = i.id
            WHERE i.project_id = %s AND i.status IN ('queued', 'done')
              AND i.open_slots + coalesce(a.held, 0) <> %s
            """,
            [project_id, overlap],
        )
        (bad_slots,) = cursor.fetchone()
    if bad_slots:
        problems.append(f"{bad_slots} items whose open slots + held assignments differ from k")
    return problems
