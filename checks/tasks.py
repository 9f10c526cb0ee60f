"""Celery tasks of the checks: thin wrappers around checks.services.

Every task is idempotent (a claimed PendingCheck row, a unique flag per rule and subject,
a claimed Delivery row), so ``acks_late`` is safe: a task whose worker died is delivered
again and does its work once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.signals import worker_ready

from checks import services
from ledger.celery import app

logger = logging.getLogger(__name__)


def _retry_delay(retries: int) -> int:
    """Exponential backoff: 2, 4, 8 ... seconds, capped at 10 minutes."""
    return int(min(600, 2 ** (retries + 1)))


@app.task(name="checks.check_entries", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def check_entries(self: Task, seqs: list[int]) -> int:
    """Run the checks owed to the log records ``seqs`` (up to 100 of one submission, claimed
    together, their flags written in one transaction); returns the number of new flags. A
    failure is retried with exponential backoff; checks another worker holds are left to it
    (or to the drain)."""
    try:
        done = services.run_pending_checks(seqs)
    except Exception as exc:
        if self.request.is_eager:
            # Embedded mode: the entries are committed; the failed checks stay pending.
            logger.exception("checks of %s failed; they stay pending", seqs)
            return 0
        raise self.retry(exc=exc, countdown=_retry_delay(self.request.retries)) from exc
    return len(done.flags)


@app.task(name="checks.drain_pending", acks_late=True)
def drain_pending(older_than_seconds: int | None = None) -> int:
    """Enqueue again the checks still pending in the database (periodic, and at worker start)."""
    return services.drain_pending(older_than_seconds)


@app.task(name="checks.sweep_unreceived", acks_late=True)
def sweep_unreceived() -> int:
    return len(services.sweep_unreceived())


@app.task(name="checks.sweep_integrity", acks_late=True)
def sweep_integrity(full: bool = False) -> int:
    """Incremental integrity sweep since the last one, or a full one."""
    return len(services.sweep_integrity(full=full))


@app.task(name="checks.sweep_full", acks_late=True)
def sweep_full() -> int:
    """The daily sweep: every record's integrity (one task: it rebuilds the Merkle root in
    order) and every transform's mass balance, cut into slices that all workers share.
    Returns the number of tasks sent."""
    sweep_integrity.delay(full=True)
    ranges = services.sweep_ranges()
    for first, last in ranges:
        sweep_mass_balance_slice.delay(first, last)
    return 1 + len(ranges)


@app.task(name="checks.sweep_mass_balance_slice", acks_late=True)
def sweep_mass_balance_slice(first: int, last: int) -> int:
    """The transform rules over the records first..last (idempotent: flags are unique)."""
    return len(services.sweep_mass_balance(first, last))


@app.task(name="checks.deliver", bind=True, acks_late=True, max_retries=None)
def deliver(self: Task, delivery_id: int) -> Any:
    """Attempt one webhook delivery; on failure retry after its backoff."""
    delivery = services.deliver(delivery_id)
    if delivery is None or delivery.delivered_at is not None or delivery.next_attempt_at is None:
        return None if delivery is None else delivery.last_status
    if not self.request.is_eager:
        # In the embedded (eager) mode a retry would run at once; retry_deliveries covers it.
        raise self.retry(countdown=services.backoff_seconds(delivery.attempts))
    return delivery.last_status


@app.task(name="checks.retry_deliveries", acks_late=True)
def retry_deliveries() -> int:
    """Enqueue the deliveries whose next attempt is due (covers lost messages)."""
    due = services.due_deliveries()
    for pk in due:
        deliver.delay(pk)
    return len(due)


@worker_ready.connect
def _drain_at_start(sender: Any = None, **kwargs: Any) -> None:
    """Checks left pending while no worker ran are sent again as soon as one starts."""
    try:
        drain_pending.delay()
    except Exception:
        logger.warning("could not enqueue drain_pending at worker start", exc_info=True)
