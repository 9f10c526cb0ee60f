"""The payload id is the idempotency key: the same content again returns the same receipt and
writes nothing; different content under a used id is a conflict."""

from __future__ import annotations

from tests.api.support import assert_problem, batch_of, bulk, intake, nothing_written, post, resigned
from tests.conftest import World, new_batch_id


def test_resubmitting_the_same_envelope_returns_the_same_receipt_and_writes_nothing(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    envelope = r.sign(r.payload("write_off", batch=batch, mass_g=400, reason="sample"))
    first = post(r, envelope)
    assert first.status_code == 201

    with nothing_written():
        again = post(r, envelope)
    assert again.status_code == 200
    body, original = again.json(), first.json()
    assert body["replayed"] is True and original["replayed"] is False
    assert (body["seq"], body["leaf_hash"], body["entry_id"]) == (
        original["seq"],
        original["leaf_hash"],
        original["entry_id"],
    )
    assert body["record"] == original["record"]
    assert batch_of(r, batch)["remaining_g"] == 600  # taken once


def test_a_retry_is_answered_even_when_the_entry_would_now_be_refused(world: World) -> None:
    """The retry of a write-off that used the batch up must not be judged an overdraw."""
    r = world.recycler
    batch = intake(r, 1_000)
    envelope = r.sign(r.payload("write_off", batch=batch, mass_g=1_000, reason="disposal"))
    seq = post(r, envelope).json()["seq"]
    with nothing_written():
        again = post(r, envelope)
    assert again.status_code == 200 and again.json()["seq"] == seq


def test_the_same_id_with_different_content_is_a_conflict(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    envelope = r.sign(r.payload("write_off", batch=batch, mass_g=400, reason="sample"))
    assert post(r, envelope).status_code == 201
    changed = resigned(r, envelope, mass_g=401)
    with nothing_written():
        body = assert_problem(post(r, changed), 409, "id-conflict", "/payload/id")
    assert envelope["payload"]["id"] in body["detail"]


def test_the_same_id_twice_in_one_bulk_with_different_content_is_a_conflict(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    first = r.sign(r.payload("write_off", batch=batch, mass_g=1, reason="sample"))
    second = resigned(r, first, mass_g=2)
    with nothing_written():
        assert_problem(bulk(r, [first, second]), 409, "id-conflict", "/entries/1/payload/id", index=1)


def test_resubmitting_a_bulk_replays_every_receipt(world: World) -> None:
    r = world.recycler
    source = intake(r, 10_000)
    envelopes = [
        r.sign(
            r.payload(
                "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=50, origin="pre_consumer"
            )
        ),
        r.sign(r.payload("write_off", batch=source, mass_g=100, reason="sample")),
        r.sign(
            r.payload(
                "transform",
                process="split",
                inputs=[{"batch": source, "mass_g": 900}],
                outputs=[{"batch": new_batch_id("evtb"), "material": "magnet_scrap", "mass_g": 900}],
            )
        ),
    ]
    first = bulk(r, envelopes)
    assert first.status_code == 201, first.content
    receipts = first.json()["receipts"]
    assert [x["replayed"] for x in receipts] == [False, False, False]

    with nothing_written():
        again = bulk(r, envelopes)
    assert again.status_code == 200, again.content
    replays = again.json()["receipts"]
    assert [x["replayed"] for x in replays] == [True, True, True]
    assert [(x["seq"], x["leaf_hash"]) for x in replays] == [(x["seq"], x["leaf_hash"]) for x in receipts]
    assert batch_of(r, source)["remaining_g"] == 9_000


def test_a_bulk_mixing_a_retry_and_a_new_entry_writes_only_the_new_one(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    old = r.sign(r.payload("write_off", batch=batch, mass_g=100, reason="sample"))
    old_seq = post(r, old).json()["seq"]
    new = r.sign(r.payload("write_off", batch=batch, mass_g=200, reason="sample"))
    response = bulk(r, [old, new])
    assert response.status_code == 201
    receipts = response.json()["receipts"]
    assert [(x["seq"], x["replayed"]) for x in receipts] == [(old_seq, True), (old_seq + 1, False)]
    assert batch_of(r, batch)["remaining_g"] == 700


def test_the_same_envelope_twice_in_one_bulk_is_written_once(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    envelope = r.sign(r.payload("write_off", batch=batch, mass_g=100, reason="sample"))
    response = bulk(r, [envelope, envelope])
    assert response.status_code == 201
    first, second = response.json()["receipts"]
    assert first["seq"] == second["seq"]
    assert batch_of(r, batch)["remaining_g"] == 900
