"""The Celery app for worker processes started by the worker tests: the service's app with a
short Redis visibility timeout, so that a message whose worker was killed is delivered again
within seconds instead of an hour."""

from __future__ import annotations

import os

from ledger.celery import app

app.conf.broker_transport_options = {
    "visibility_timeout": int(os.environ.get("CHECKS_TEST_VISIBILITY_TIMEOUT", "3600"))
}

__all__ = ["app"]
