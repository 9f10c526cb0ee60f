"""Refusals of a single envelope point into that envelope and carry no bulk index; refusals
inside a bulk point to /entries/{i}/... and carry index i."""

from __future__ import annotations

from tests.api.support import assert_problem, bulk, intake, nothing_written, post
from tests.conftest import World


def test_a_single_envelope_refusal_has_a_pointer_and_no_index(world: World) -> None:
    r = world.recycler
    batch = intake(r, 100)
    envelope = r.sign(r.payload("write_off", batch=batch, mass_g=101, reason="sample"))
    with nothing_written():
        body = assert_problem(post(r, envelope), 409, "overdraw", "/payload/mass_g", index=None)
    assert body["errors"] == [{"pointer": "/payload/mass_g", "detail": body["detail"]}]
    assert body["hint"]


def test_the_same_refusal_in_a_bulk_names_the_envelope(world: World) -> None:
    r = world.recycler
    batch = intake(r, 100)
    envelope = r.sign(r.payload("write_off", batch=batch, mass_g=101, reason="sample"))
    with nothing_written():
        assert_problem(bulk(r, [envelope]), 409, "overdraw", "/entries/0/payload/mass_g", index=0)


def test_a_form_refusal_of_a_single_envelope_has_no_index_either(world: World) -> None:
    r = world.recycler
    envelope = r.sign(r.payload("write_off", batch="evtb-x", mass_g=0, reason="sample"))
    with nothing_written():
        assert_problem(post(r, envelope), 422, "invalid-mass", "/payload/mass_g", index=None)
