"""An entry's receipt (GET /api/v1/entries/{seq}/) carries its inclusion proof once a
checkpoint covers it, and says why not before."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from ledger import transparency
from ledger.protocol.merkle import verify_inclusion
from ledger.protocol.note import verify_checkpoint
from tests.conftest import World, new_batch_id


def test_the_receipt_proves_inclusion_once_a_checkpoint_covers_the_entry(world: World, settings: Any) -> None:
    r = world.recycler
    seq = r.submit_ok(
        "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=7, origin="pre_consumer"
    )["seq"]

    before = r.client.get(f"/api/v1/entries/{seq}/").json()
    assert before["inclusion"] is None
    assert "not covered by a checkpoint yet" in before["inclusion_note"]

    transparency.integrate_and_publish()
    after = r.client.get(f"/api/v1/entries/{seq}/").json()
    inclusion = after["inclusion"]
    assert "inclusion_note" not in after
    vkey = APIClient().get("/api/v1/log/").json()["vkey"]
    checkpoint = verify_checkpoint(inclusion["checkpoint"], [vkey], origin=settings.LEDGER_LOG_ORIGIN)
    assert inclusion["checkpoint_size"] == checkpoint.size == seq + 1
    assert inclusion["root"] == checkpoint.root.hex()
    proof = [bytes.fromhex(h) for h in inclusion["proof"]]
    verify_inclusion(bytes.fromhex(after["leaf_hash"]), seq, checkpoint.size, proof, checkpoint.root)


def test_another_organisations_receipt_stays_hidden(world: World) -> None:
    seq = world.recycler.submit_ok(
        "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=7, origin="pre_consumer"
    )["seq"]
    transparency.integrate_and_publish()
    assert world.outsider.client.get(f"/api/v1/entries/{seq}/").status_code == 404
