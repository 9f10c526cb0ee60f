"""Celery tasks: thin wrappers around domain functions."""

from __future__ import annotations

from django.db import connection

from ledger.celery import app
from ledger.models import LogRecord
from ledger.transparency import integrate_and_publish


@app.task(name="ledger.log_size")
def log_size() -> int:
    """Size of the log as a worker sees it: a round trip through broker, worker and database
    that deploy checks and the production-shape test use."""
    connection.ensure_connection()
    last = LogRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
    return 0 if last is None else last + 1


@app.task(name="ledger.publish_checkpoint")
def publish_checkpoint() -> int | None:
    """Integrate new records into the Merkle tree and sign a checkpoint (beat, every 30 s).

    Idempotent: a no-op while the log has not grown. Returns the latest checkpoint's size.
    """
    published = integrate_and_publish()
    return None if published is None else published.checkpoint.size
