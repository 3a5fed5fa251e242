"""The queue's hand-written SQL: the statements claim and submit run for every judgment.

Claim and submit run with many evaluators at once. Built through the ORM, the claim's
filtered, anti-joined, ordered SELECT costs several times more Python per call than the
database spends running it, so the few statements of the hot path are written out here,
once (bench/queue.py measures them; the figures are in bench/README.md). `CLAIMABLE`
mirrors `annotation.queue.selectors.claimable_items`, the ORM form the queue counts use;
tests/annotation/test_queue_sql.py holds the two to the same answer on SQLite and
PostgreSQL. Everything runs unchanged on SQLite, minus the row locks (SQLite serialises
writers: every transaction there is BEGIN IMMEDIATE).

Table names come from the models; rows are read and inserted through the models' own
fields (`annotation.rows`, `annotation.queue.db.insert_row`), so a new column needs no change
here. Round trips count as much as Python: on PostgreSQL a change that goes with an insert
rides in the insert's statement (a data-modifying WITH), the claim reads its item with the
row lock, the lease sweep first probes without a transaction, and the claim asks for the
evaluator's languages and for leases due in one statement.
"""

from __future__ import annotations

from functools import cache
from typing import cast

from django.db import connection
from django.db.models import Model

from annotation.models import (
    COUNTED_JUDGMENT_KINDS,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Judgment,
    Language,
    Project,
)
from annotation.rows import columns

ITEM = Item._meta.db_table
ASSIGNMENT = Assignment._meta.db_table
JUDGMENT = Judgment._meta.db_table
LANGUAGE = Language._meta.db_table
PROJECT = Project._meta.db_table

# Kinds whose judgments are "production data": they count towards overlap k.
SLOT_KINDS = (AssignmentKind.PRODUCTION,)
# Kinds an evaluator works from the production queue.
QUEUE_KINDS = (AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT)

# The partial index item_claimable's condition, repeated literally (not as parameters) so
# the planner can prove the index applies; plus "not seen by this evaluator", answered by
# the unique index assignment_item_evaluator_unique.
CLAIMABLE = f"""
    i.project_id = %(project)s AND i.status = '{ItemStatus.QUEUED.value}' AND i.open_slots > 0 AND NOT i.is_gold
    AND NOT EXISTS (
        SELECT 1 FROM {ASSIGNMENT} seen
        WHERE seen.item_id = i.id AND seen.evaluator_id = %(evaluator)s
          AND seen.kind <> '{AssignmentKind.CALIBRATION.value}'
    )"""

# The item card's progress in one statement (it runs on every card): the evaluator's queue
# judgments submitted since the start of the day (a range of the index
# assignment_evaluator_status, whatever they did on other days), and the items still
# claimable by them in the language, counted up to `cap` rows (the scan stops there; an
# exact count read every claimable item of the language on every card). The cap is part
# of the text, not a parameter: a parameter in LIMIT made PostgreSQL plan the statement
# again on every card.
PROGRESS = f"""
    SELECT
      (SELECT count(*) FROM {ASSIGNMENT} a
       WHERE a.evaluator_id = %(evaluator)s AND a.project_id = %(project)s
         AND a.status = '{AssignmentStatus.SUBMITTED.value}'
         AND a.kind IN ({", ".join(f"'{kind.value}'" for kind in QUEUE_KINDS)})
         AND a.submitted_at >= %(since)s),
      (SELECT count(*) FROM (
         SELECT 1 FROM {ITEM} i WHERE i.language_id = %(language)s AND {CLAIMABLE}
         LIMIT {{cap:d}}) c)"""

# One language: an ordered, limited scan of item_claimable (project, language, -priority, id).
# It reads the whole item and its language (columns filled in by candidate_sql), which the
# card needs, so the claim does not read them again after its commit.
CANDIDATE = f"""
    SELECT {{columns}} FROM {ITEM} i JOIN {LANGUAGE} l ON l.id = i.language_id
    WHERE i.language_id = %(language)s AND {CLAIMABLE}
    ORDER BY i.priority DESC, i.id
    LIMIT 1"""

# One branch per language of the question "which language's best claimable item ranks
# highest" (claim._best_language): each an index probe, `{n}` numbering the branch.
BEST_OF_LANGUAGE = (
    f"SELECT * FROM (SELECT i.language_id, i.priority, i.id FROM {ITEM} i "
    f"WHERE i.language_id = %(language_{{n}})s AND {CLAIMABLE} "
    "ORDER BY i.priority DESC, i.id LIMIT 1) AS best_{n}"
)

# The evaluator's live lease in the wanted languages (a reload resumes it), served by the
# index assignment_evaluator_status.
LIVE_LEASE = f"""
    SELECT a.id FROM {ASSIGNMENT} a JOIN {ITEM} i ON i.id = a.item_id
    WHERE a.evaluator_id = %(evaluator)s AND a.project_id = %(project)s
      AND a.status = '{AssignmentStatus.LEASED.value}'
      AND a.kind IN ({", ".join(f"'{k.value}'" for k in QUEUE_KINDS)})
      AND a.lease_expires_at > %(now)s AND i.language_id IN ({{languages}})
    ORDER BY a.leased_at, a.id
    LIMIT 1"""

# Leases past their time, served by the partial index assignment_open_leases.
EXPIRED = f"""
    SELECT a.id, a.item_id, a.kind FROM {ASSIGNMENT} a
    WHERE a.status = '{AssignmentStatus.LEASED.value}' AND a.lease_expires_at <= %(now)s {{project}}
    ORDER BY a.id"""

# The assignment and its item, locked in the one order used everywhere: assignment, then item.
SUBMIT_READ = f"""
    SELECT a.evaluator_id, a.status, a.kind, a.item_id, a.leased_at, i.open_slots, i.status, i.language_id
    FROM {ASSIGNMENT} a JOIN {ITEM} i ON i.id = a.item_id
    WHERE a.id = %(assignment)s"""

# The k-th current production judgment makes a queued item done. Its label version moves
# whenever the item is settled for the export after this judgment — done, or k counted
# (production and historical) judgments in — so an incremental export pull sees the new
# vote (annotation.label_changes); an item still short of k has no exported line to change.
COUNTED_KINDS_SQL = ", ".join(f"'{kind}'" for kind in COUNTED_JUDGMENT_KINDS)
MARK_DONE = f"""
    UPDATE {ITEM} SET status = '{ItemStatus.DONE.value}', updated_at = %(now)s,
        label_version = label_version + 1
    WHERE id = %(item)s AND status = '{ItemStatus.QUEUED.value}'
      AND (SELECT count(*) FROM {JUDGMENT} j
           WHERE j.item_id = %(item)s AND j.kind = '{AssignmentKind.PRODUCTION.value}' AND j.is_current) >= %(overlap)s"""
BUMP_IF_SETTLED = f"""
    UPDATE {ITEM} SET label_version = label_version + 1
    WHERE id = %(item)s
      AND (SELECT count(*) FROM {JUDGMENT} j
           WHERE j.item_id = %(item)s AND j.kind IN ({COUNTED_KINDS_SQL}) AND j.is_current) >= %(overlap)s"""

# The same, in the statement that inserts the judgment (PostgreSQL: a data-modifying WITH;
# one UPDATE, since one statement may change a row only once). Its parts all see the
# snapshot from before the insert, so the new judgment counts as the + 1. The item is
# locked by this transaction (SUBMIT_READ) and the statement's snapshot is taken after that
# lock, so every other judgment of the item is already counted.
MARK_DONE_WITH_INSERT = f"""
    UPDATE {ITEM} SET
        status = CASE WHEN status = '{ItemStatus.QUEUED.value}' AND c.production + 1 >= %s
                      THEN '{ItemStatus.DONE.value}' ELSE status END,
        updated_at = %s,
        label_version = label_version + 1
    FROM (SELECT count(*) FILTER (WHERE j.kind = '{AssignmentKind.PRODUCTION.value}') AS production,
                 count(*) AS counted
          FROM {JUDGMENT} j
          WHERE j.item_id = %s AND j.kind IN ({COUNTED_KINDS_SQL}) AND j.is_current) AS c
    WHERE {ITEM}.id = %s AND c.counted + 1 >= %s
    RETURNING {ITEM}.status"""

# The changes that go with an insert on the hot path: a claim takes the item's slot with
# its new assignment (and a late submit takes it again), a submit marks the assignment
# submitted with its judgment. The row each changes is already locked by this transaction,
# so the lock order stays the same.
TAKE_SLOT = f"UPDATE {ITEM} SET open_slots = open_slots - 1 WHERE id = %s"
MARK_SUBMITTED = f"UPDATE {ASSIGNMENT} SET status = %s, submitted_at = %s WHERE id = %s"

# pg_advisory_xact_lock(space, evaluator): one evaluator's claims run one at a time.
CLAIM_LOCK_SPACE = 0x50515545  # "PQUE"


def lock_clause(*, of: str = "", skip_locked: bool = False) -> str:
    """FOR NO KEY UPDATE [OF …] [SKIP LOCKED] where the database has row locks. NO KEY:
    these rows' keys never change, so foreign-key checks of concurrent inserts (a new
    assignment or judgment on the same item) need not wait for us."""
    features = connection.features
    if not features.has_select_for_update:
        return ""
    clause = " FOR NO KEY UPDATE" if features.has_select_for_no_key_update else " FOR UPDATE"
    if of and features.has_select_for_update_of:
        clause += f" OF {of}"
    if skip_locked and features.has_select_for_update_skip_locked:
        clause += " SKIP LOCKED"
    return clause


@cache
def candidate_sql(*, skip_locked: bool) -> str:
    # OF i: the language row is read, never locked.
    selected = f"{columns(Item, 'i')}, {columns(Language, 'l')}"
    return CANDIDATE.format(columns=selected) + lock_clause(of="i", skip_locked=skip_locked)


@cache
def assignment_with_item_sql() -> str:
    """An assignment with its item, the item's language and project, in that column order."""
    return (
        f"SELECT {columns(Assignment, 'a')}, {columns(Item, 'i')}, {columns(Language, 'l')}, "
        f"{columns(Project, 'p')} FROM {ASSIGNMENT} a "
        f"JOIN {ITEM} i ON i.id = a.item_id JOIN {LANGUAGE} l ON l.id = i.language_id "
        f"JOIN {PROJECT} p ON p.id = i.project_id WHERE a.id = %s"
    )


@cache
def item_with_language_sql() -> str:
    return (
        f"SELECT {columns(Item, 'i')}, {columns(Language, 'l')} FROM {ITEM} i "
        f"JOIN {LANGUAGE} l ON l.id = i.language_id WHERE i.id = %s"
    )


@cache
def insert_sql(model: type[Model], names: tuple[str, ...], returning: bool) -> str:
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    return f"{sql} RETURNING {quote(cast(str, model._meta.pk.column))}" if returning else sql
