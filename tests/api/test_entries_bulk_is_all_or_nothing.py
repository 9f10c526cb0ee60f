"""A bulk of up to 1,000 envelopes is one transaction: the first failing envelope is named by
index and pointer, and nothing of the bulk is written."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ledger.models import Batch, LogRecord
from tests.api.support import assert_problem, batch_of, bulk, intake, nothing_written
from tests.conftest import Persona, World, new_batch_id


def _intakes(persona: Persona, n: int) -> list[dict[str, Any]]:
    return [
        persona.sign(
            persona.payload(
                "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=10, origin="pre_consumer"
            )
        )
        for _ in range(n)
    ]


def test_a_bulk_is_appended_in_request_order_with_consecutive_seqs(world: World) -> None:
    r = world.recycler
    envelopes = _intakes(r, 5)
    before = LogRecord.objects.count()
    response = bulk(r, envelopes)
    assert response.status_code == 201, response.content
    receipts = response.json()["receipts"]
    assert [x["seq"] for x in receipts] == list(range(before, before + 5))
    assert [x["entry_id"] for x in receipts] == [e["payload"]["id"] for e in envelopes]
    for prev, this in itertools.pairwise(receipts):
        assert this["prev"] == prev["leaf_hash"]
    assert Batch.objects.filter(id__in=[e["payload"]["batch"] for e in envelopes]).count() == 5


def test_a_bulk_of_more_than_a_thousand_is_refused(world: World) -> None:
    r = world.recycler
    one = _intakes(r, 1)[0]
    with nothing_written():
        body = assert_problem(bulk(r, [one] * 1_001), 400, "too-many-entries", "/entries")
    assert "1001" in body["detail"]


@pytest.mark.parametrize(
    ("spoil", "status", "code", "pointer"),
    [
        (lambda p, e: e["payload"].update(mass_g=11), 422, "bad-signature", "/signature"),
        (lambda p, e: e.update(extra=1), 400, "invalid-envelope", "/extra"),
        (
            lambda p, e: e.update(p.sign(dict(e["payload"], mass_g=1.5))),
            422,
            "invalid-mass",
            "/payload/mass_g",
        ),
        (
            lambda p, e: e.update(p.sign(dict(e["payload"], org="hpms"))),
            403,
            "wrong-organisation",
            "/payload/org",
        ),
        (
            lambda p, e: e.update(p.sign(dict(e["payload"], batch="evtb-seed"))),
            409,
            "batch-exists",
            "/payload/batch",
        ),
    ],
)
def test_the_third_envelope_failing_names_index_two_and_writes_nothing(
    world: World, spoil: Any, status: int, code: str, pointer: str
) -> None:
    r = world.recycler
    intake(r, 10, batch="evtb-seed")
    envelopes = _intakes(r, 5)
    spoil(r, envelopes[2])
    with nothing_written():
        assert_problem(bulk(r, envelopes), status, code, f"/entries/2{pointer}", index=2)
    for envelope in envelopes[:2]:
        assert not Batch.objects.filter(id=envelope["payload"]["batch"]).exists()


def test_a_state_rule_failing_late_in_a_bulk_rolls_back_the_earlier_effects(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    envelopes = [
        r.sign(r.payload("write_off", batch=batch, mass_g=100, reason="sample")),
        r.sign(r.payload("ship", batch=batch, mass_g=900, to_org=p.org.slug)),
        r.sign(r.payload("write_off", batch=batch, mass_g=1, reason="sample")),  # in transit now
    ]
    with nothing_written():
        assert_problem(bulk(r, envelopes), 409, "in-transit", "/entries/2/payload/batch", index=2)
    state = batch_of(r, batch)
    assert (state["remaining_g"], state["status"], state["in_transit"]) == (1_000, "active", None)


def test_entries_of_a_bulk_may_build_on_each_other(world: World) -> None:
    r, p = world.recycler, world.processor
    raw, split = new_batch_id("evtb"), new_batch_id("evtb")
    envelopes = [
        r.sign(r.payload("intake", batch=raw, material="magnet_scrap", mass_g=1_000, origin="post_consumer")),
        r.sign(
            r.payload(
                "transform",
                process="split",
                inputs=[{"batch": raw, "mass_g": 1_000}],
                outputs=[{"batch": split, "material": "magnet_scrap", "mass_g": 1_000}],
            )
        ),
        r.sign(r.payload("ship", batch=split, mass_g=1_000, to_org=p.org.slug)),
    ]
    assert bulk(r, envelopes).status_code == 201
    assert batch_of(r, raw)["status"] == "depleted"
    assert batch_of(r, split)["in_transit"]["to_org"] == p.org.slug
