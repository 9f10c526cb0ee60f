"""Append-only means append-only: the ORM refuses to update or delete log records on every
backend, and on PostgreSQL a trigger refuses raw SQL too."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from ledger.models import LogRecord
from tests.api.support import intake
from tests.conftest import World, need_service


def _snapshot() -> list[tuple[int, str, str]]:
    return list(LogRecord.objects.order_by("seq").values_list("seq", "leaf_hash", "canonical"))


def test_the_orm_refuses_bulk_update_and_delete(world: World) -> None:
    intake(world.recycler, 100)
    before = _snapshot()
    with pytest.raises(TypeError, match="append-only"):
        LogRecord.objects.update(prev="f" * 64)
    with pytest.raises(TypeError, match="append-only"):
        LogRecord.objects.filter(seq=0).update(leaf_hash="0" * 64)
    with pytest.raises(TypeError, match="append-only"):
        LogRecord.objects.all().delete()
    with pytest.raises(TypeError, match="append-only"):
        LogRecord.objects.filter(seq__gte=0).delete()
    assert _snapshot() == before


def test_the_orm_refuses_to_save_or_delete_an_existing_record(world: World) -> None:
    intake(world.recycler, 100)
    before = _snapshot()
    record = LogRecord.objects.order_by("-seq").first()
    assert record is not None
    record.prev = "f" * 64
    with pytest.raises(TypeError, match="append-only"):
        record.save()
    with pytest.raises(TypeError, match="append-only"):
        record.save(update_fields=["prev"])
    with pytest.raises(TypeError, match="append-only"):
        record.delete()
    # bulk_update runs its UPDATE inside its own atomic block; the savepoint keeps the
    # test's transaction usable after the refusal.
    with pytest.raises(TypeError, match="append-only"), transaction.atomic():
        LogRecord.objects.bulk_update([record], ["prev"])
    assert _snapshot() == before


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_logrecord SET prev = repeat('f', 64) WHERE seq = 0",
        "UPDATE ledger_logrecord SET canonical = canonical",
        "DELETE FROM ledger_logrecord WHERE seq = (SELECT max(seq) FROM ledger_logrecord)",
        "DELETE FROM ledger_logrecord",
    ],
)
def test_postgresql_refuses_raw_update_and_delete(world: World, sql: str) -> None:
    need_service("PostgreSQL", connection.vendor == "postgresql")
    intake(world.recycler, 100)
    before = _snapshot()
    assert before
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert _snapshot() == before
