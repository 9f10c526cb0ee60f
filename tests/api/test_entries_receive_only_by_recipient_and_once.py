"""receive: only by the organisation named in the ship entry, and only once."""

from __future__ import annotations

from ledger.models import Shipment
from tests.api.support import assert_problem, batch_of, intake, nothing_written, ship
from tests.conftest import World


def test_an_outsider_receiving_is_told_there_is_no_such_batch(world: World) -> None:
    r, p, outsider = world.recycler, world.processor, world.outsider
    batch = intake(r, 1_000)
    ship(r, p, batch, 1_000)
    with nothing_written():
        foreign = assert_problem(
            outsider.submit("receive", batch=batch, mass_g=1_000), 422, "unknown-batch", "/payload/batch"
        )
        missing = assert_problem(
            outsider.submit("receive", batch="nosy-none", mass_g=1_000),
            422,
            "unknown-batch",
            "/payload/batch",
        )
    assert foreign["detail"].replace(batch, "ID") == missing["detail"].replace("nosy-none", "ID")
    assert batch_of(r, batch)["status"] == "in_transit"


def test_the_sender_cannot_receive_its_own_shipment(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    ship(r, p, batch, 1_000)
    with nothing_written():
        assert_problem(r.submit("receive", batch=batch, mass_g=1_000), 409, "not-recipient", "/payload/batch")


def test_another_organisation_that_held_the_batch_gets_not_recipient(world: World) -> None:
    r, p, m = world.recycler, world.processor, world.maker
    batch = intake(r, 1_000)
    ship(r, p, batch, 1_000)
    p.submit_ok("receive", batch=batch, mass_g=1_000)
    ship(p, m, batch, 1_000)
    with nothing_written():
        assert_problem(r.submit("receive", batch=batch, mass_g=1_000), 409, "not-recipient", "/payload/batch")


def test_receiving_twice_is_refused(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    ship(r, p, batch, 1_000)
    p.submit_ok("receive", batch=batch, mass_g=1_000)
    with nothing_written():
        assert_problem(
            p.submit("receive", batch=batch, mass_g=1_000), 409, "not-in-transit", "/payload/batch"
        )
    assert Shipment.objects.filter(batch_id=batch).count() == 1


def test_receiving_a_batch_never_shipped_is_refused(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    with nothing_written():
        assert_problem(
            r.submit("receive", batch=batch, mass_g=1_000), 409, "not-in-transit", "/payload/batch"
        )
