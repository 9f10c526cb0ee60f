"""No overdraw: consumption never exceeds a batch's remaining mass, alone or within a bulk."""

from __future__ import annotations

from tests.api.support import assert_problem, batch_of, bulk, intake, nothing_written, post
from tests.conftest import World, new_batch_id


def test_transform_input_above_remaining_is_an_overdraw(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    r.submit_ok("write_off", batch=batch, mass_g=200, reason="sample")
    envelope = r.sign(
        r.payload(
            "transform",
            process="hpms",
            inputs=[{"batch": batch, "mass_g": 801}],
            outputs=[{"batch": new_batch_id("evtb-p"), "material": "alloy_powder", "mass_g": 790}],
        )
    )
    with nothing_written():
        body = assert_problem(post(r, envelope), 409, "overdraw", "/payload/inputs/0/mass_g")
    assert "800 g remaining" in body["detail"]
    assert batch_of(r, batch)["remaining_g"] == 800


def test_second_input_of_a_transform_overdrawing_names_that_input(world: World) -> None:
    r = world.recycler
    a, b = intake(r, 1_000), intake(r, 500)
    envelope = r.sign(
        r.payload(
            "transform",
            process="merge",
            inputs=[{"batch": a, "mass_g": 1_000}, {"batch": b, "mass_g": 501}],
            outputs=[{"batch": new_batch_id("evtb-m"), "material": "alloy_powder", "mass_g": 1_500}],
        )
    )
    with nothing_written():
        assert_problem(post(r, envelope), 409, "overdraw", "/payload/inputs/1/mass_g")
    # The first input passed on its own; the whole entry is refused, so it is untouched.
    assert batch_of(r, a)["remaining_g"] == 1_000


def test_write_off_above_remaining_is_an_overdraw(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    with nothing_written():
        response = r.submit("write_off", batch=batch, mass_g=1_001, reason="disposal")
        assert_problem(response, 409, "overdraw", "/payload/mass_g")
    r.submit_ok("write_off", batch=batch, mass_g=1_000, reason="disposal")
    with nothing_written():
        response = r.submit("write_off", batch=batch, mass_g=1, reason="disposal")
        assert_problem(response, 409, "overdraw", "/payload/mass_g")


def test_two_entries_of_one_bulk_that_together_overdraw_are_refused_whole(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    first = r.sign(
        r.payload(
            "transform",
            process="split",
            inputs=[{"batch": batch, "mass_g": 600}],
            outputs=[{"batch": new_batch_id("evtb-s"), "material": "magnet_scrap", "mass_g": 600}],
        )
    )
    second = r.sign(
        r.payload(
            "transform",
            process="split",
            inputs=[{"batch": batch, "mass_g": 401}],
            outputs=[{"batch": new_batch_id("evtb-s"), "material": "magnet_scrap", "mass_g": 401}],
        )
    )
    with nothing_written():
        assert_problem(
            bulk(r, [first, second]), 409, "overdraw", "/entries/1/payload/inputs/0/mass_g", index=1
        )
    assert batch_of(r, batch)["remaining_g"] == 1_000
    # Each on its own fits.
    assert bulk(r, [first]).status_code == 201


def test_bulk_write_offs_that_exactly_use_up_a_batch_are_accepted(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    envelopes = [r.sign(r.payload("write_off", batch=batch, mass_g=250, reason="sample")) for _ in range(4)]
    assert bulk(r, envelopes).status_code == 201
    state = batch_of(r, batch)
    assert (state["remaining_g"], state["status"]) == (0, "depleted")


def test_shipping_a_depleted_batch_is_refused(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    r.submit_ok("write_off", batch=batch, mass_g=1_000, reason="disposal")
    with nothing_written():
        response = r.submit("ship", batch=batch, mass_g=1_000, to_org=p.org.slug)
        assert_problem(response, 409, "overdraw", "/payload/mass_g")
