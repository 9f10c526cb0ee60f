"""Periodic sweeps in the embedded mode: shipments not received within 14 days, and the
per-process overrides in settings changing what a check flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from checks.models import Flag
from checks.tasks import sweep_unreceived
from tests.checks.conftest import flag_keys, submit_chain
from tests.conftest import EV_MAGNET_PPM, World, new_batch_id


def ship_days_ago(world: World, days: float) -> tuple[str, int]:
    r = world.recycler
    batch = new_batch_id("evtb-late")
    r.submit_ok(
        "intake",
        batch=batch,
        material="magnet_scrap",
        mass_g=5_000,
        origin="post_consumer",
        composition=EV_MAGNET_PPM,
    )
    when = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    seq = r.submit_ok("ship", batch=batch, mass_g=5_000, to_org=world.processor.org.slug, occurred_at=when)[
        "seq"
    ]
    return batch, seq


def test_unreceived_shipments_are_flagged_after_fourteen_days(world: World) -> None:
    late, late_seq = ship_days_ago(world, 14.01)
    ship_days_ago(world, 13.9)
    assert sweep_unreceived.delay().get() == 1
    flag = Flag.objects.get(rule="unreceived")
    assert (flag.batch_id, flag.subject_key, flag.seqs) == (late, f"ship:{late_seq}", [late_seq])
    assert set(flag.org_links.values_list("organisation__slug", flat=True)) == {"evtb", "hpms"}
    assert sweep_unreceived.delay().get() == 0  # never a second flag for the same shipment


def test_per_process_overrides_change_what_is_flagged(
    world: World, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.LEDGER_CHECK_OVERRIDES = {"hpms": {"yield_min": 0.65}, "*": {"transit_tolerance": 0.05}}
    with django_capture_on_commit_callbacks(execute=True):
        submit_chain(world, leaky=True)  # a 2.8 % transit loss and a 0.70 HPMS yield
    assert flag_keys(Flag.objects.all()) == set()


def test_beat_runs_the_sweeps_and_the_drain() -> None:
    from ledger.celery import app

    scheduled = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert scheduled["checks.drain_pending"] <= 60
    assert scheduled["checks.sweep_integrity"] <= 600
    assert scheduled["checks.sweep_unreceived"] <= 3600
    assert scheduled["checks.sweep_full"] <= 86400
    assert scheduled["checks.retry_deliveries"] <= 300
    assert set(scheduled) <= set(app.tasks)
