"""seed_demo twice: the second run replays every entry and writes nothing."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accounts.models import ApiToken, Facility, Organisation, SigningKey, User
from ledger import demo
from ledger.models import Access, Batch, EntryBatch, LogRecord, Shipment
from tests.demo.conftest import run

MODELS = (Organisation, Facility, User, ApiToken, SigningKey, LogRecord, Batch, Shipment, EntryBatch, Access)


def counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


def key_files(var_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((var_dir / "demo-keys").glob("*.pem"))}


@pytest.mark.django_db
def test_running_seed_demo_twice_changes_nothing_the_second_time(var_dir: Path) -> None:
    out, _ = run("seed_demo")
    assert "23 entries recorded" in out
    first = counts()
    head = LogRecord.objects.order_by("-seq").values_list("seq", "leaf_hash").first()
    keys = key_files(var_dir)

    out, _ = run("seed_demo")

    assert "already seeded" in out and "23 entries replayed" in out
    assert counts() == first
    assert LogRecord.objects.order_by("-seq").values_list("seq", "leaf_hash").first() == head
    assert key_files(var_dir) == keys
    # One key registration per organisation plus every step of the chain.
    assert first["LogRecord"] == len(demo.ORGS) + len(demo.steps())
    assert first["SigningKey"] == len(demo.ORGS)


@pytest.mark.django_db
def test_persona_keys_are_private_files_under_var_dir(var_dir: Path) -> None:
    run("seed_demo")
    directory = var_dir / "demo-keys"
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == sorted(f"{o.slug}.pem" for o in demo.ORGS)
    for name in files:
        assert stat.S_IMODE(os.stat(directory / name).st_mode) == 0o600


@pytest.mark.django_db
def test_a_seed_replayed_days_later_keeps_its_timestamps_and_writes_nothing() -> None:
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    demo.seed(now=now)
    first = counts()
    stamps = sorted(r.payload["occurred_at"] for r in LogRecord.objects.filter(entry_type="intake"))

    result = demo.seed(now=now + timedelta(days=9))

    assert (result.created, result.replayed) == (0, len(demo.steps()))
    assert counts() == first
    assert sorted(r.payload["occurred_at"] for r in LogRecord.objects.filter(entry_type="intake")) == stamps


@pytest.mark.django_db
def test_every_occurred_at_is_in_the_past_in_chain_order() -> None:
    run("seed_demo")
    chain = [LogRecord.objects.get(entry_id=demo.seed_entry_id(s)) for s in demo.steps()]
    times = [datetime.fromisoformat(r.payload["occurred_at"].replace("Z", "+00:00")) for r in chain]
    assert all(r.payload["occurred_at"].endswith("Z") for r in chain)
    assert times == sorted(times)
    assert times[-1] < datetime.now(UTC) - timedelta(days=2)
    assert times[-1] - times[0] > timedelta(days=30)
    # The log's order is the chain's order.
    assert [r.seq for r in chain] == sorted(r.seq for r in chain)
