"""Which items an export contains, and the `since` cursor.

An item is *settled* — its line may be exported — when it has a final label
(adjudication), or when it is not waiting for adjudication and is `done` (k production
judgments) or has at least k counted judgments (production and historical: imported
judgments settle an item too). Gold items (honeypots, calibration) never are.

Each export first *marks* what changed since the last one (`ExportMark`, one row per
item, assigned under a per-project lock, so mark ids grow in commit order): items that
became settled, and items whose `label_version` moved — every write that can change an
item's line bumps it (see `annotation.models.Item.label_version`). An item marked again
gets a new id past every cursor handed out. In rating projects a prompt's responses are
paired together, so when one of them changes all its marked siblings are marked again.

Each mark keeps what decides its item's line as it was when marked (status, gold flag,
votes, final label, key, language, prompt; see ExportMark): an item whose state moves
after that is pending again and the next pull marks it again, so a pull reads the narrow
marks instead of the item rows, their judgments and final labels, and its retractions read
the marks alone.

A pull streams the marks above `since` as they are when its first line goes out (its
cursor is the last mark its own marking made): the line of each that qualifies; the
retractions endpoint lists those that do not. A deleted item's mark becomes a tombstone
(MARK_DELETED), which only the retractions carry.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from annotation import metrics
from annotation.exports.rows import votes_sql
from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    ExportMark,
    ExportPending,
    FinalLabel,
    Item,
    ItemStatus,
    Judgment,
    Project,
)

CURSOR_PREFIX = "c1."

logger = logging.getLogger("parity.background")


def export_cursor_encode(*, project: Project, seq: int) -> str:
    raw = f"{project.pk}:{seq}".encode("ascii")
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def export_cursor_decode(*, project: Project, cursor: str) -> int:
    """The mark id a cursor stands for; ValidationError for anything this project did not hand out."""
    bad = ValidationError(
        {
            "since": [
                "is not a cursor from an earlier export of this project; omit it for a full export"
            ]
        }
    )
    if not isinstance(cursor, str) or not cursor.startswith(CURSOR_PREFIX) or len(cursor) > 100:
        raise bad
    body = cursor[len(CURSOR_PREFIX) :]
    try:
        project_id, seq = (
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii").split(":")
        )
        if int(project_id) != project.pk or int(seq) < 0:
            raise bad
        return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None


# The status of a deleted item's mark (a tombstone): never settled, so a pull retracts it.
MARK_DELETED = "deleted"


def row_settled(*, status: str, is_gold: bool, has_final: bool, n_votes: int, overlap: int) -> bool:
    """The settled rule of the module docstring, for one streamed row (the SQL below is
    the same rule for a query)."""
    if is_gold or status == MARK_DELETED:
        return False
    if has_final:
        return True
    if status == ItemStatus.ADJUDICATION:
        return False
    return status in (ItemStatus.DONE, ItemStatus.FINAL) or n_votes >= overlap


def _settled(among: QuerySet[Item], *, project: Project) -> Q:
    """The condition for a settled item of `among`.

    The judgment counts come from one grouped pass over those items' judgments (a hashed
    IN list), not a count per item: the difference between seconds and minutes for a
    million items.
    """
    counted = (
        Judgment.objects.filter(is_current=True, kind__in=COUNTED_JUDGMENT_KINDS, item__in=among)
        .order_by()
        .values("item_id")
        # COUNT(*), not COUNT(id): the partial index of current judgments answers it alone
        # (an index-only scan), without reading each judgment's row.
        .annotate(n=Count("*"))
        .filter(n__gte=project.overlap)
        .values("item_id")
    )
    finals = FinalLabel.objects.filter(item__project=project).values("item_id")
    return Q(pk__in=finals) | (
        ~Q(status=ItemStatus.ADJUDICATION)
        & (Q(status__in=[ItemStatus.DONE, ItemStatus.FINAL]) | Q(pk__in=counted))
    )


def _settled_among_candidates(*, project: Project) -> QuerySet[Item]:
    """The unmarked candidates (of `parity_export_candidates`, below) whose label is settled."""
    unmarked = Item.objects.filter(
        pk__in=RawSQL("SELECT id FROM parity_export_candidates WHERE unmarked", []), is_gold=False
    )
    # Only the unmarked items' judgments are counted: a pull with nothing new counts none.
    return unmarked.filter(_settled(unmarked.values("pk"), project=project))


def export_marks_advance(*, project: Project, thorough: bool = True) -> int:
    """Mark what became exportable or changed since the last export; returns the project's
    latest mark id (the cursor of a pull that starts now). `thorough=False` (incremental
    pulls) looks only at the items recorded as changed (ExportPending).

    Under a lock on the project row two exports of one project never mark at the same
    time, so mark ids grow in commit order. The candidates are collected into temporary
    tables before the insert: an INSERT that anti-joins the table it writes to makes
    PostgreSQL rescan the growing table for every row.
    """
    with transaction.atomic():
        # NO KEY: claims and submits insert rows that reference the project, and their
        # foreign-key checks (FOR KEY SHARE) must not wait for an export to finish marking.
        list(Project.objects.select_for_update(no_key=True).filter(pk=project.pk).values_list("pk"))
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            _marking_prepare(cursor)
            _pending_take(cursor, project=project)
            _tombstones_write(cursor, project=project, now=now)
            _candidates_collect(cursor, project=project, thorough=thorough)
            _marking_collect(cursor, project=project)
            if project.task_type == "rating":
                _prompt_groups_add(cursor, project=project)
            _marks_write(cursor, project=project, now=now, lookup=not thorough)
        return ExportMark.objects.filter(project=project).aggregate(m=Max("id"))["m"] or 0


def export_marks_refresh() -> int:
    """Mark what changed in every project with pending changes, as an incremental pull
    would; returns how many projects were marked. The background sweep runs it (Celery
    beat, or `manage.py background_sweep` from cron), so that a pull finds the marks made
    and streams at once, instead of first marking everything since the last pull. Marks
    are positions, not lines: marking early changes nothing a pull delivers.

    Each project is marked in its own transaction: one whose marking fails (a lock
    timeout, a bad row) is logged, counted in `parity_task_failures{task="export_marking"}`
    and keeps its changes pending for the next sweep or pull, and the projects after it
    are still marked. Returns how many were marked."""
    # Pending rows of a project deleted meanwhile (its items' delete trigger may have
    # written them after the project's own rows were collected): nothing to mark.
    ExportPending.objects.exclude(project_id__in=Project.objects.values("pk")).delete()
    project_ids = list(
        ExportPending.objects.order_by().values_list("project_id", flat=True).distinct()
    )
    marked = 0
    for project in Project.objects.filter(pk__in=project_ids).order_by("pk"):
        try:
            export_marks_advance(project=project, thorough=False)
        except Exception:
            logger.exception(
                "export marking of project %s failed; its changes stay pending", project.slug
            )
            metrics.TASK_FAILURES.labels(task="export_marking").inc()
            continue
        marked += 1
    return marked


def _tables() -> tuple[str, str]:
    """The quoted names of the marks' and the items' tables."""
    quote = connection.ops.quote_name
    return quote(ExportMark._meta.db_table), quote(Item._meta.db_table)


_TEMPORARY_TABLES = (
    "parity_export_taken",
    "parity_export_gone",
    "parity_export_candidates",
    "parity_export_marking",
)


def _marking_prepare(cursor: CursorWrapper) -> None:
    if connection.vendor == "postgresql":
        # The judgment counts of a large project must fit in memory as a hash; with the
        # default 4 MB PostgreSQL falls back to re-running the grouped count per item.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        # A parallel plan has every worker build that hash again (one grouped count
        # per process).
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        # The work is index walks and hashing, not expressions: JIT costs more than it saves.
        cursor.execute("SET LOCAL jit = off")
    for table in _TEMPORARY_TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _pending_take(cursor: CursorWrapper, *, project: Project) -> None:
    """parity_export_taken: the items whose label version moved since the export last
    looked (a trigger records each move in ExportPending), deleted from there — only
    those taken; a move committed after this read stays pending for the next pull. The
    items are read after the delete, which waits for a writer still holding a pending
    row, so what is read later includes every move whose row was taken."""
    pending = connection.ops.quote_name(ExportPending._meta.db_table)
    if connection.vendor == "postgresql":
        # One statement: the rows deleted are the rows taken.
        cursor.execute("CREATE TEMPORARY TABLE parity_export_taken (id bigint)")
        cursor.execute(
            "WITH taken AS ("  # noqa: S608 - names from the models
            f"  DELETE FROM {pending} WHERE project_id = %s RETURNING item_id"
            ") INSERT INTO parity_export_taken (id) SELECT item_id FROM taken",
            [project.pk],
        )
        return
    cursor.execute(
        "CREATE TEMPORARY TABLE parity_export_taken AS "  # noqa: S608 - names from the models
        f"SELECT item_id AS id FROM {pending} WHERE project_id = %s",
        [project.pk],
    )
    cursor.execute(f"DELETE FROM {pending} WHERE item_id IN (SELECT id FROM parity_export_taken)")  # noqa: S608


def _tombstones_write(cursor: CursorWrapper, *, project: Project, now: Any) -> None:
    """Taken items that no longer exist (deleted: trigger `item_export_gone`) get their
    mark marked again as a tombstone — a new id, status MARK_DELETED, no votes or final
    label, the key and language kept — so a pull retracts their line; the other responses
    of a deleted rating response's prompt are taken too (their pairs change). The gone
    items then leave parity_export_taken: nothing else is marked for them."""
    marks, items = _tables()
    gone = (
        "SELECT t.id FROM parity_export_taken t "  # noqa: S608 - names from the models
        f"WHERE NOT EXISTS (SELECT 1 FROM {items} i WHERE i.id = t.id)"
    )
    cursor.execute(f"{gone} LIMIT 1")
    if cursor.fetchone() is None:
        return  # nothing deleted: no more temporary tables (their locks last the transaction)
    cursor.execute(
        f"CREATE TEMPORARY TABLE parity_export_gone AS SELECT * FROM {marks} "  # noqa: S608
        f"WHERE project_id = %s AND status <> %s AND item_id IN ({gone})",
        [project.pk, MARK_DELETED],
    )
    kept = ", ".join(c for c in _MARK_COLUMNS if c not in _CLEARED)
    cursor.execute(
        f"DELETE FROM {marks} WHERE item_id IN (SELECT item_id FROM parity_export_gone)"  # noqa: S608
    )
    cursor.execute(
        f"INSERT INTO {marks} (project_id, item_id, created_at, {kept}, status) "  # noqa: S608
        f"SELECT project_id, item_id, %s, {kept}, %s FROM parity_export_gone ORDER BY item_id",
        [now, MARK_DELETED],
    )
    if project.task_type == "rating":
        cursor.execute(
            "INSERT INTO parity_export_taken (id) SELECT m.item_id "  # noqa: S608
            f"FROM {marks} m WHERE m.project_id = %s AND m.status <> %s AND m.prompt_id <> '' "
            "AND (m.language_id, m.prompt_id) IN ("
            "  SELECT language_id, prompt_id FROM parity_export_gone WHERE prompt_id <> '') "
            "AND m.item_id NOT IN (SELECT id FROM parity_export_taken)",
            [project.pk, MARK_DELETED],
        )
    cursor.execute(f"DELETE FROM parity_export_taken WHERE id IN ({gone})")  # noqa: S608
    cursor.execute("DROP TABLE parity_export_gone")


def _candidates_collect(cursor: CursorWrapper, *, project: Project, thorough: bool) -> None:
    """parity_export_candidates: the items to look at, with whether they were ever marked.

    Incremental pulls look only at the taken items (parity_export_taken). A full pull
    reads the whole project once more — items never marked (not gold) and marked items
    whose version moved since their mark (gold ones too: made gold, a line is retracted)
    — so a change made around the services is found there."""
    marks, items = _tables()
    if thorough:
        sql = (
            f"SELECT i.id, m.item_id IS NULL AS unmarked FROM {items} i "  # noqa: S608 - names from the models
            f"LEFT JOIN {marks} m ON m.item_id = i.id AND m.project_id = %s "
            "WHERE i.project_id = %s AND (i.id IN (SELECT id FROM parity_export_taken) "
            "OR (m.item_id IS NULL AND NOT i.is_gold) OR i.label_version <> m.label_version)"
        )
        params = [project.pk, project.pk]
    elif connection.vendor == "postgresql":
        # What changed is usually a small share of a large project: one index lookup per
        # changed item in the marks (narrow rows, just written), not a pass over all of
        # them, which PostgreSQL's cost model otherwise prefers from about a tenth of the
        # project on. The items are read once, when the marks are written. OFFSET 0 keeps
        # each lookup a lookup.
        sql = (
            "SELECT t.id, m.item_id IS NULL AS unmarked FROM parity_export_taken t "  # noqa: S608
            f"LEFT JOIN LATERAL (SELECT item_id FROM {marks} "
            "  WHERE item_id = t.id AND project_id = %s OFFSET 0) m ON true"
        )
        params = [project.pk]
    else:
        sql = (
            "SELECT t.id, m.item_id IS NULL AS unmarked FROM parity_export_taken t "  # noqa: S608
            f"LEFT JOIN {marks} m ON m.item_id = t.id AND m.project_id = %s"
        )
        params = [project.pk]
    cursor.execute(f"CREATE TEMPORARY TABLE parity_export_candidates AS {sql}", params)
    cursor.execute("DROP TABLE parity_export_taken")
    if connection.vendor == "postgresql":
        # A temporary table has no statistics until analysed: the settled check's
        # plan depends on whether 10 or a million candidates are unmarked.
        cursor.execute("ANALYZE parity_export_candidates")


def _marking_collect(cursor: CursorWrapper, *, project: Project) -> None:
    """parity_export_marking: the candidates to mark, `fresh` when never marked before."""
    new_sql, new_params = (
        _settled_among_candidates(project=project)
        .order_by()
        .values_list("id")
        .query.sql_with_params()
    )
    # Changed marked items are marked again whether or not they still qualify: a
    # pull then carries their current line or their retraction.
    cursor.execute(
        "CREATE TEMPORARY TABLE parity_export_marking AS "
        "SELECT id, false AS fresh FROM parity_export_candidates WHERE NOT unmarked "
        f"UNION ALL SELECT id, true AS fresh FROM ({new_sql}) new",
        new_params,
    )
    cursor.execute("DROP TABLE parity_export_candidates")


def _prompt_groups_add(cursor: CursorWrapper, *, project: Project) -> None:
    """A rating pair belongs to its prompt: every marked response of a prompt with a
    change is marked again, so a pull carries the prompt's whole group (a deleted
    response's tombstone stays as it is: it has no item to be marked from)."""
    marks, items = _tables()
    cursor.execute(
        f"INSERT INTO parity_export_marking (id, fresh) SELECT m.item_id, false "  # noqa: S608
        f"FROM {marks} m "
        f"WHERE m.project_id = %s AND m.prompt_id <> '' AND m.status <> %s "
        "AND (m.language_id, m.prompt_id) IN ("
        f"  SELECT c.language_id, c.prompt_id FROM {items} c "
        "  WHERE c.id IN (SELECT id FROM parity_export_marking) AND c.prompt_id <> '')"
        " AND m.item_id NOT IN (SELECT id FROM parity_export_marking)",
        [project.pk, MARK_DELETED],
    )


_SNAPSHOT = ("external_id", "language_id", "prompt_id", "status", "is_gold")
# What a marking writes into each mark besides its place (project, item, id, time).
_MARK_COLUMNS = ("label_version", *_SNAPSHOT, "votes", "version", "final")
# What a tombstone no longer has (left NULL) and what it says instead (status).
_CLEARED = ("status", "votes", "version", "final")


def _marks_write(cursor: CursorWrapper, *, project: Project, now: Any, lookup: bool) -> None:
    """Give everything in parity_export_marking a new mark (an id past every cursor handed
    out), each with what decides its line as read now (ExportMark): the item's label
    version, status, gold flag, votes and final label, from one snapshot. A move after this
    read leaves the item pending again, so the next pull marks it again. `lookup`: few items
    (an incremental pull), one index lookup each."""
    marks, items = _tables()
    finals = connection.ops.quote_name(FinalLabel._meta.db_table)
    join, votes = votes_sql(project.task_type, item="i.id")
    if lookup and connection.vendor == "postgresql":
        source = (
            f"parity_export_marking t CROSS JOIN LATERAL (SELECT * FROM {items} "  # noqa: S608
            "  WHERE id = t.id OFFSET 0) i"
        )
    else:
        source = f"parity_export_marking t JOIN {items} i ON i.id = t.id"
    snapshot = ", ".join(f"i.{column}" for column in _SNAPSHOT)
    select = (
        f"SELECT i.id, i.label_version, {snapshot}, {votes}, f.value AS final FROM {source} "  # noqa: S608
        f"{join} LEFT JOIN {finals} f ON f.item_id = i.id"
    )
    columns = ", ".join(_MARK_COLUMNS)
    if connection.vendor == "postgresql":
        # A mark marked again is updated in place, with a new id from the sequence: one
        # lookup of the mark instead of a delete and an insert (each a lookup and an index
        # entry of their own). It also keeps the mark of an item deleted by a transaction
        # that committed while this marking ran (the select no longer finds the item): the
        # delete's pending row turns that mark into a tombstone next time, where a delete
        # and insert would have dropped it and the retraction with it. SQLite has one
        # writer at a time, so no delete commits in between.
        assigned = ", ".join(f"{c} = s.{c}" for c in _MARK_COLUMNS)
        cursor.execute(
            f"UPDATE {marks} m SET id = DEFAULT, created_at = %s, {assigned} "  # noqa: S608
            f"FROM ({select} WHERE NOT t.fresh ORDER BY i.id) s WHERE m.item_id = s.id",
            [now],
        )
        marked = cursor.rowcount
        fresh = "WHERE t.fresh"
    else:
        marking = "SELECT id FROM parity_export_marking"
        cursor.execute(f"DELETE FROM {marks} WHERE item_id IN ({marking})")  # noqa: S608
        marked, fresh = 0, ""
    cursor.execute(
        f"INSERT INTO {marks} (project_id, item_id, created_at, {columns}) "  # noqa: S608
        f"SELECT %s, s.id, %s, {columns} FROM ({select} {fresh}) s ORDER BY s.id",
        [project.pk, now],
    )
    marked += cursor.rowcount
    cursor.execute("DROP TABLE parity_export_marking")
    if marked > 10_000 and connection.vendor == "postgresql":
        # Fresh statistics keep the next pull's range scan and anti-join on the index.
        cursor.execute(f"ANALYZE {marks}")
