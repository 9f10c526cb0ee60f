"""A record altered directly in the database (the append-only trigger switched off for the
UPDATE) is reported by the integrity sweep, run by a real worker, with its seq: by the
incremental sweep when it lies after the watermark, by the daily full sweep otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from checks.models import Flag, SweepState
from checks.tasks import sweep_integrity
from ledger.models import LogRecord
from tests.checks.workers import real_celery, thread_worker, wait_for
from tests.conftest import World, new_batch_id

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def tamper(seq: int, old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE ledger_logrecord DISABLE TRIGGER ledger_logrecord_append_only")
        try:
            cursor.execute(
                "UPDATE ledger_logrecord SET canonical = replace(canonical, %s, %s) WHERE seq = %s",
                [old, new, seq],
            )
            assert cursor.rowcount == 1
        finally:
            cursor.execute("ALTER TABLE ledger_logrecord ENABLE TRIGGER ledger_logrecord_append_only")


def last_seq() -> int:
    return LogRecord.objects.order_by("-seq").values_list("seq", flat=True)[0]


def swept_to(seq: int) -> bool:
    return SweepState.objects.filter(name="integrity", last_seq__gte=seq).exists()


def intake(world: World, mass_g: int) -> int:
    return int(
        world.recycler.submit_ok(
            "intake",
            batch=new_batch_id("evtb-i"),
            material="magnet_scrap",
            mass_g=mass_g,
            origin="post_consumer",
        )["seq"]
    )


def test_the_integrity_sweep_reports_an_altered_record_with_its_seq(
    transactional_db: None, settings: Any, world: World
) -> None:
    early = intake(world, 123_457)
    intake(world, 1_000)
    with real_celery(settings), thread_worker():
        sweep_integrity.delay()
        wait_for(lambda: swept_to(last_seq()), 60, "the first incremental sweep")
        assert not Flag.objects.filter(rule="integrity").exists()

        tamper(early, '"mass_g":123457', '"mass_g":123456')  # behind the watermark
        late = intake(world, 765_432)
        tamper(late, '"mass_g":765432', '"mass_g":765431')  # after it
        sweep_integrity.delay()
        wait_for(lambda: swept_to(late), 60, "the second incremental sweep")
        assert list(Flag.objects.filter(rule="integrity").values_list("subject_key", flat=True)) == [
            f"record:{late}"
        ]

        sweep_integrity.delay(full=True)
        wait_for(lambda: Flag.objects.filter(rule="integrity").count() == 2, 60, "the full sweep")
    flag = Flag.objects.get(subject_key=f"record:{early}")
    assert flag.severity == "critical" and flag.seqs == [early] and flag.evidence["seq"] == early
    assert {"leaf_hash", "payload_digest", "signature"} <= set(flag.evidence["problems"])
    # The records after an altered one still chain to its stored leaf hash: only it is flagged.
    assert Flag.objects.filter(rule="integrity").count() == 2
