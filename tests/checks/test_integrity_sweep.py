"""The daily full integrity sweep anchors on the latest signed checkpoint: records altered
after they were published are named with their seq, whether or not the altering also
rewrote the stored leaf hash (then the rebuilt Merkle root no longer matches the signed
one, and every signature is verified again)."""

from __future__ import annotations

from typing import Any

from django.db import connection

from checks import services
from checks.models import Flag
from ledger import transparency
from tests.conftest import World, new_batch_id


def alter(seq: int, old: str, new: str, rehash: bool = False) -> None:
    """UPDATE a log record behind the ORM's back (the PostgreSQL trigger switched off)."""
    from ledger.protocol.hashing import leaf_hash

    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            # Inside the test's transaction: deferred foreign-key checks would forbid ALTER TABLE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE ledger_logrecord DISABLE TRIGGER ledger_logrecord_append_only")
        try:
            cursor.execute("SELECT canonical FROM ledger_logrecord WHERE seq = %s", [seq])
            canonical = cursor.fetchone()[0].replace(old, new)
            leaf = leaf_hash(canonical.encode()).hex()
            if rehash:
                cursor.execute(
                    "UPDATE ledger_logrecord SET canonical = %s, leaf_hash = %s WHERE seq = %s",
                    [canonical, leaf, seq],
                )
            else:
                cursor.execute("UPDATE ledger_logrecord SET canonical = %s WHERE seq = %s", [canonical, seq])
        finally:
            if postgres:
                cursor.execute("ALTER TABLE ledger_logrecord ENABLE TRIGGER ledger_logrecord_append_only")


def intakes(world: World, masses: list[int]) -> list[int]:
    return [
        world.recycler.submit_ok(
            "intake", batch=new_batch_id("evtb-i"), material="magnet_scrap", mass_g=m, origin="post_consumer"
        )["seq"]
        for m in masses
    ]


def integrity_flags() -> dict[str, list[str]]:
    return {f.subject_key: f.evidence["problems"] for f in Flag.objects.filter(rule="integrity")}


def test_full_sweep_names_a_record_altered_after_its_checkpoint(world: World, settings: Any) -> None:
    a, b, c = intakes(world, [111_111, 222_222, 333_333])
    assert transparency.integrate_and_publish() is not None
    assert services.sweep_integrity() == []  # first sight: every signature verified once
    alter(b, '"mass_g":222222', '"mass_g":222000')
    assert services.sweep_integrity() == []  # behind the watermark: the incremental sweep does not look
    services.sweep_integrity(full=True)
    # Bytes no longer match the stored leaf hash: named at once, no signature needed.
    assert integrity_flags() == {f"record:{b}": ["leaf_hash", "payload_digest"]}
    assert Flag.objects.get(subject_key=f"record:{b}").seqs == [b]
    assert a < b < c


def test_full_sweep_catches_a_rehashed_record_through_the_signed_root(world: World, settings: Any) -> None:
    _, b, c = intakes(world, [111_111, 222_222, 333_333])
    transparency.integrate_and_publish()
    services.sweep_integrity()
    alter(b, '"mass_g":222222', '"mass_g":222000', rehash=True)
    services.sweep_integrity(full=True)
    flags = integrity_flags()
    size = transparency.latest_checkpoint().size
    assert flags[f"checkpoint:{size}"] == ["checkpoint_root"]
    assert "signature" in flags[f"record:{b}"]  # re-verified because the root changed
    assert flags[f"record:{c}"] == ["chain"]  # the next record still points at the old hash
    assert set(flags) == {f"checkpoint:{size}", f"record:{b}", f"record:{c}"}
