"""With the broker unreachable at submission time, submissions still succeed and their
checks are owed in the database; once the broker is back, drain_pending runs them."""

from __future__ import annotations

from typing import Any

import pytest

from checks.models import Flag, PendingCheck
from checks.tasks import drain_pending
from ledger.models import LogRecord
from tests.checks.conftest import flag_keys, submit_chain
from tests.checks.workers import real_celery, thread_worker, use_broker, wait_for
from tests.conftest import World

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

CLOSED_PORT = "redis://127.0.0.1:1/0"


def test_checks_survive_a_broker_outage(transactional_db: None, settings: Any, world: World) -> None:
    with real_celery(settings) as url:
        first = LogRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
        use_broker(CLOSED_PORT)  # Redis "stopped": nothing listens there
        chain = submit_chain(world, leaky=True)  # every submit_ok asserts 201
        new = LogRecord.objects.filter(seq__gt=first).count()
        assert new == 7
        assert PendingCheck.objects.count() == new
        assert not Flag.objects.exists()

        use_broker(url)  # Redis is back
        with thread_worker():
            drain_pending.delay(0)
            wait_for(lambda: not PendingCheck.objects.exists(), 60, "drain_pending to run the owed checks")
    assert flag_keys(Flag.objects.all()) == chain.expected
