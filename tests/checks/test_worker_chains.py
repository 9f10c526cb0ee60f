"""A real Celery worker (in a thread) on Redis and PostgreSQL checks each entry: every
submission commits its records with one pending check each and one message each on the
broker; the worker then raises exactly the expected flags for a leaky chain, none for a
clean one."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from checks.models import Flag, PendingCheck
from ledger.models import LogRecord
from tests.checks.conftest import flag_keys, submit_chain
from tests.checks.workers import real_celery, thread_worker, wait_for
from tests.conftest import World

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.mark.parametrize("leaky", [True, False], ids=["leaky", "clean"])
def test_a_real_worker_checks_every_entry(
    transactional_db: None, settings: Any, world: World, leaky: bool
) -> None:
    with real_celery(settings) as url:
        first = LogRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
        chain = submit_chain(world, leaky=leaky)
        # Nothing ran in-process: the checks are owed in the database and queued on Redis.
        assert PendingCheck.objects.count() == LogRecord.objects.filter(seq__gt=first).count() == 7
        assert redis.Redis.from_url(url).llen("celery") == 7
        assert not Flag.objects.exists()
        with thread_worker():
            wait_for(lambda: not PendingCheck.objects.exists(), 60, "the worker to run every pending check")
    assert flag_keys(Flag.objects.all()) == chain.expected
    assert bool(chain.expected) == leaky
