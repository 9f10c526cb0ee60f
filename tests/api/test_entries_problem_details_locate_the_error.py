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


def test_pointers_escape_member_names_as_rfc_6901_requires(world: World) -> None:
    """A member name holding '/' or '~' is escaped (~1, ~0), or the pointer names another place."""
    r = world.recycler
    fields = {"batch": "evtb-esc", "material": "swarf", "mass_g": 1, "origin": "pre_consumer"}
    with nothing_written():
        response = post(r, r.sign(r.payload("intake", **fields, **{"a/b~c": 1})))
        assert_problem(response, 422, "invalid-payload", "/payload/a~1b~0c")
        response = post(r, r.sign(r.payload("intake", **fields, composition={"Nd": 1, "Nd/Pr": 5})))
        assert_problem(response, 422, "invalid-composition", "/payload/composition/Nd~1Pr")
