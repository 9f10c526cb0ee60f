"""A worker killed (SIGKILL) in the middle of a check: the message was not acknowledged
(acks_late), Redis delivers it again after the visibility timeout, another worker takes
the expired claim over, and exactly one flag results."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from checks.models import Flag, PendingCheck
from tests.checks.workers import real_celery, spawn_worker, stop, wait_for
from tests.conftest import EV_MAGNET_PPM, World, new_batch_id

VISIBILITY_TIMEOUT = 3
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_a_check_interrupted_by_a_killed_worker_raises_exactly_one_flag(
    transactional_db: None, settings: Any, world: World, tmp_path: Path
) -> None:
    p = world.processor
    scrap, powder = new_batch_id("hpms-scrap"), new_batch_id("hpms-pw")
    # Set-up entries are checked in-process (eager), so only the HPMS step goes to a worker.
    p.submit_ok(
        "intake",
        batch=scrap,
        material="magnet_scrap",
        mass_g=50_000,
        origin="post_consumer",
        composition=EV_MAGNET_PPM,
    )
    log = Path(os.environ.get("CHECKS_WORKER_LOG", tmp_path / "workers.log"))
    with real_celery(settings):
        first = spawn_worker(
            "doomed",
            log,
            LEDGER_CHECK_TEST_SLEEP="30",  # long enough to be killed inside the check
            LEDGER_CHECK_LEASE_SECONDS="2",
        )
        second = None
        try:
            receipt = p.submit_ok(
                "transform",
                process="hpms",
                inputs=[{"batch": scrap, "mass_g": 50_000}],
                outputs=[{"batch": powder, "material": "alloy_powder", "mass_g": 35_000}],
                losses=[{"kind": "unreacted_fraction", "mass_g": 15_000}],
            )
            seq = receipt["seq"]
            wait_for(
                lambda: PendingCheck.objects.filter(seq=seq, claimed_at__isnull=False).exists(),
                60,
                "the first worker to claim the check",
            )
            stop(first, signal.SIGKILL)
            assert not Flag.objects.exists()
            row = PendingCheck.objects.get(seq=seq)
            assert row.attempts == 1

            # Kombu restores unacknowledged messages older than the visibility timeout when
            # a worker starts polling (and every ~100 s after): start the next one after it.
            time.sleep(VISIBILITY_TIMEOUT + 1)
            # No drain: only the redelivered message can finish the check.
            second = spawn_worker(
                "rescuer",
                log,
                visibility_timeout=str(VISIBILITY_TIMEOUT),
                LEDGER_CHECK_LEASE_SECONDS="2",
                LEDGER_CHECK_DRAIN_AFTER_SECONDS="86400",
            )
            wait_for(lambda: not PendingCheck.objects.filter(seq=seq).exists(), 90, "the redelivered check")
        finally:
            stop(first, signal.SIGKILL)
            if second is not None:
                stop(second)
    flags = list(Flag.objects.all())
    assert [(f.rule, f.subject_key) for f in flags] == [("yield_out_of_range", f"entry:{seq}")], (
        log.read_text()[-3000:]
    )
