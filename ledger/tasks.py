"""Celery tasks: thin wrappers around domain functions."""

from __future__ import annotations

from django.db import connection

from ledger.celery import app
from ledger.models import LogRecord


@app.task(name="ledger.log_size")
def log_size() -> int:
    """Size of the log as a worker sees it: a round trip through broker, worker and database
    that deploy checks and the production-shape test use."""
    connection.ensure_connection()
    last = LogRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
    return 0 if last is None else last + 1
