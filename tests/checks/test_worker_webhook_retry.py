"""A webhook that fails is retried by the real worker with backoff (Celery retry with a
countdown) until it answers 2xx; every attempt is counted on the delivery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checks.models import Delivery, PendingCheck
from tests.checks.conftest import Receiver, submit_chain, verify
from tests.checks.workers import real_celery, spawn_worker, stop, wait_for
from tests.conftest import World

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_failed_deliveries_are_retried_with_backoff_by_the_worker(
    transactional_db: None, settings: Any, world: World, receiver: Receiver, tmp_path: Path
) -> None:
    settings.LEDGER_WEBHOOK_ALLOW_HTTP = True
    receiver.statuses = [500, 502, 503]  # the first three POSTs fail, whichever alert they carry
    response = world.processor.client.post(
        "/api/v1/webhooks/", {"url": f"{receiver.url}/hook", "secret": "s3cret-for-tests"}, format="json"
    )
    assert response.status_code == 201
    with real_celery(settings):
        # A worker process of its own; its first retry comes after 1 s, the next after 2 s.
        worker = spawn_worker("webhooks", tmp_path / "worker.log", LEDGER_WEBHOOK_BACKOFF_SECONDS="1")
        try:
            submit_chain(world, leaky=True)
            wait_for(lambda: not PendingCheck.objects.exists(), 60, "the checks")
            wait_for(
                lambda: Delivery.objects.count() == 2
                and not Delivery.objects.filter(delivered_at__isnull=True).exists(),
                60,
                "both alerts to be delivered",
            )
        finally:
            stop(worker)
    rows = list(Delivery.objects.values_list("attempts", "last_status"))
    assert sum(a for a, _ in rows) == len(receiver.posts) == 5
    assert {status for _, status in rows} == {200}
    assert {verify(p, "s3cret-for-tests")["flag"]["rule"] for p in receiver.posts} == {
        "transit_loss",
        "yield_out_of_range",
    }
