"""The review queue: claim, lease expiry, skip, submit, revise, honeypot mixing.

Correctness first. Claiming is one short transaction: the highest-priority queued item
in the evaluator's qualified languages that still has an open slot and that this
evaluator has not seen, taken with `SELECT … FOR NO KEY UPDATE SKIP LOCKED LIMIT 1` on
PostgreSQL (SQLite serialises writers, so there the same code is correct, just not
concurrent). One evaluator's own claims run one at a time (a transaction-scoped advisory
lock), so two tabs never hold two leases. Locks are taken in one order — assignment, then
item — everywhere a transaction holds both, and a claim that must wait for an item holds
no other item lock while it waits (see `claim._claim_candidate`), so claim, submit and lease
expiry do not deadlock; should PostgreSQL still abort one as a deadlock victim, it is run
again (`retried_on_deadlock`). A claim reports an empty queue only when nothing is left:
items that other claims or submits hold locked at that instant are waited for, not
skipped, once nothing unlocked remains.

Invariants (tested under real concurrency on PostgreSQL, tests/concurrency/):
an item never gets more than `overlap` production judgments; an evaluator never sees the
same item twice; an abandoned lease gives its slot back; nothing submitted is lost.

Claim and submit run for every judgment, so their few statements are written in SQL, in
`annotation.queue.sql` (which says why and what they mirror); everything else uses the ORM.

One subsystem per module:
- `claim`: the next item for an evaluator (leases, honeypot mixing, the tail of a queue);
- `submit`: judgments on a lease, late submits, revisions;
- `undo`: taking back the last submission;
- `leases`: expiry (the sweep) and skips;
- `enqueue`: pool items into the queue with their priorities;
- `selectors`: what the queue shows (counts, progress, the live lease, an evaluator's
  judgments);
- `db`: the retry on deadlock and the raw inserts of the hot path;
- `sql`: the hot path's hand-written statements.
"""

from annotation.queue.claim import NotQualified, item_claim_next
from annotation.queue.db import retried_on_deadlock
from annotation.queue.enqueue import items_enqueue
from annotation.queue.leases import assignment_skip, queue_expire_leases
from annotation.queue.selectors import (
    Progress,
    QueueCount,
    assignment_current,
    assignment_for_evaluator,
    assignment_with_item,
    evaluator_progress,
    judgment_history,
    judgments_of_evaluator,
    queue_counts,
)
from annotation.queue.submit import MAX_SECONDS_ON_TASK, judgment_revise, judgment_submit
from annotation.queue.undo import UNDO_SECONDS, judgment_undo

__all__ = [
    "MAX_SECONDS_ON_TASK",
    "UNDO_SECONDS",
    "NotQualified",
    "Progress",
    "QueueCount",
    "assignment_current",
    "assignment_for_evaluator",
    "assignment_skip",
    "assignment_with_item",
    "evaluator_progress",
    "item_claim_next",
    "items_enqueue",
    "judgment_history",
    "judgment_revise",
    "judgment_submit",
    "judgment_undo",
    "judgments_of_evaluator",
    "queue_counts",
    "queue_expire_leases",
    "retried_on_deadlock",
]
