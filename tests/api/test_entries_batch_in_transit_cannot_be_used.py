"""A shipped batch cannot be transformed, shipped again or written off until it is received."""

from __future__ import annotations

from tests.api.support import assert_problem, batch_of, intake, nothing_written, ship
from tests.conftest import World, new_batch_id


def test_sender_cannot_transform_ship_or_write_off_a_batch_in_transit(world: World) -> None:
    r, p, m = world.recycler, world.processor, world.maker
    batch = intake(r, 1_000)
    ship(r, p, batch, 1_000)

    with nothing_written():
        response = r.submit(
            "transform",
            process="shredding",
            inputs=[{"batch": batch, "mass_g": 500}],
            outputs=[{"batch": new_batch_id("evtb"), "material": "magnet_scrap", "mass_g": 500}],
        )
        assert_problem(response, 409, "in-transit", "/payload/inputs/0/batch")
        response = r.submit("ship", batch=batch, mass_g=1_000, to_org=m.org.slug)
        assert_problem(response, 409, "in-transit", "/payload/batch")
        response = r.submit("write_off", batch=batch, mass_g=1, reason="lost")
        assert_problem(response, 409, "in-transit", "/payload/batch")

    assert batch_of(r, batch)["status"] == "in_transit"


def test_the_recipient_cannot_use_the_batch_before_receiving_it(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    ship(r, p, batch, 1_000)
    with nothing_written():
        response = p.submit("write_off", batch=batch, mass_g=1, reason="sample")
        # Not yet in its custody, and it has never held it: it learns nothing beyond that.
        assert_problem(response, 422, "unknown-batch", "/payload/batch")
    p.submit_ok("receive", batch=batch, mass_g=1_000)
    p.submit_ok("write_off", batch=batch, mass_g=1, reason="sample")


def test_a_partial_shipment_is_refused(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    with nothing_written():
        response = r.submit("ship", batch=batch, mass_g=999, to_org=p.org.slug)
        assert_problem(response, 409, "partial-shipment", "/payload/mass_g")


def test_shipping_to_an_unknown_organisation_or_facility_is_refused(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    with nothing_written():
        response = r.submit("ship", batch=batch, mass_g=1_000, to_org="no-such-org")
        assert_problem(response, 422, "unknown-organisation", "/payload/to_org")
        response = r.submit("ship", batch=batch, mass_g=1_000, to_org=p.org.slug, to_facility="no-such-site")
        assert_problem(response, 422, "unknown-facility", "/payload/to_facility")
