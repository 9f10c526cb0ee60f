"""The Celery app: `celery -A ledger.celery worker` / `beat`.

Configured from Django settings (CELERY_*). Without REDIS_URL tasks run eagerly in-process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ledger.settings")

app = Celery("ledger")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["ledger"])
