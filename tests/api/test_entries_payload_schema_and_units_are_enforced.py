"""Schema and units: masses are positive JSON integers, compositions integer ppm summing to at
most 1,000,000 over real elements; no unknown fields; the payload names the submitter's own
organisation and facility and a time not in the future."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.support import assert_problem, intake, nothing_written, post, post_raw
from tests.conftest import Persona, World, new_batch_id


def _intake_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "batch": new_batch_id("evtb"),
        "material": "magnet_scrap",
        "mass_g": 1_000,
        "origin": "post_consumer",
    }
    fields.update(changes)
    return fields


def _refused(
    persona: Persona, status: int, code: str, pointer: str, type_: str = "intake", **fields: Any
) -> dict:
    with nothing_written():
        response = post(persona, persona.sign(persona.payload(type_, **fields)))
        return assert_problem(response, status, code, pointer)


@pytest.mark.parametrize("mass", [0, -1, -1_000, True, False, "1000", None, [1000], 2**53])
def test_a_mass_that_is_not_a_positive_whole_number_of_grams_is_refused(world: World, mass: Any) -> None:
    r = world.recycler
    if mass == 2**53 and not isinstance(mass, bool):
        # Beyond I-JSON's safe integers the envelope cannot even be canonicalised (and not signed).
        envelope = {"payload": r.payload("intake", **_intake_fields(mass_g=mass)), "key_id": "0" * 64}
        envelope["signature"] = "A" * 86
        with nothing_written():
            assert_problem(post(r, envelope), 400, "number-out-of-range", "/payload")
        return
    _refused(r, 422, "invalid-mass", "/payload/mass_g", **_intake_fields(mass_g=mass))


def test_a_float_mass_is_refused_even_when_whole(world: World) -> None:
    """1000.0 is not an integer on the wire: its JCS form is 1000, but a client that sends
    floats has a unit problem we refuse to guess about."""
    r = world.recycler
    payload = r.payload("intake", **_intake_fields(mass_g=1000))
    envelope = r.sign(payload)
    raw = json.dumps(envelope).replace('"mass_g": 1000', '"mass_g": 1000.0').encode()
    assert b"1000.0" in raw
    with nothing_written():
        body = assert_problem(post_raw(r, raw), 422, "invalid-mass", "/payload/mass_g")
    assert "float" in body["detail"]


def test_a_float_mass_in_a_transform_input_is_refused(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    _refused(
        r,
        422,
        "invalid-mass",
        "/payload/inputs/0/mass_g",
        "transform",
        process="hpms",
        inputs=[{"batch": batch, "mass_g": 10.5}],
        outputs=[{"batch": new_batch_id("evtb"), "material": "alloy_powder", "mass_g": 10}],
    )


def test_a_composition_summing_above_one_million_ppm_is_refused(world: World) -> None:
    r = world.recycler
    _refused(
        r,
        422,
        "invalid-composition",
        "/payload/composition",
        **_intake_fields(composition={"Nd": 600_000, "Fe": 400_001}),
    )


def test_a_composition_of_exactly_one_million_ppm_is_accepted(world: World) -> None:
    world.recycler.submit_ok("intake", **_intake_fields(composition={"Nd": 600_000, "Fe": 400_000}))


@pytest.mark.parametrize(
    ("composition", "pointer"),
    [
        ({"Nd": 1, "Xx": 5}, "/payload/composition/Xx"),
        ({"nd": 5}, "/payload/composition/nd"),
        ({"Nd": 1.5}, "/payload/composition/Nd"),
        ({"Nd": -1}, "/payload/composition/Nd"),
        ({"Nd": True}, "/payload/composition/Nd"),
        ({}, "/payload/composition"),
        ([["Nd", 5]], "/payload/composition"),
    ],
)
def test_a_malformed_composition_is_refused(world: World, composition: Any, pointer: str) -> None:
    _refused(world.recycler, 422, "invalid-composition", pointer, **_intake_fields(composition=composition))


def test_an_assay_composition_is_checked_too(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    _refused(
        r,
        422,
        "invalid-composition",
        "/payload/composition/Unobtainium",
        "assay",
        batch=batch,
        composition={"Unobtainium": 5},
        lab="x",
        method="xrf",
        certificate_sha256="ab" * 32,
    )


def test_a_payload_for_another_organisation_is_refused(world: World) -> None:
    r, p = world.recycler, world.processor
    payload = p.payload("intake", **_intake_fields())  # org = the processor
    with nothing_written():
        # Signed with the recycler's own valid key, submitted with its own token.
        assert_problem(post(r, r.sign(payload)), 403, "wrong-organisation", "/payload/org")


def test_an_unknown_facility_is_refused(world: World) -> None:
    r, p = world.recycler, world.processor
    _refused(r, 422, "unknown-facility", "/payload/facility", facility="no-such-site", **_intake_fields())
    # Another organisation's facility is just as unknown.
    _refused(r, 422, "unknown-facility", "/payload/facility", facility=p.facility.code, **_intake_fields())


def test_an_occurred_at_in_the_future_is_refused(world: World) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _refused(
        world.recycler, 422, "invalid-payload", "/payload/occurred_at", occurred_at=future, **_intake_fields()
    )


@pytest.mark.parametrize(
    "value", ["2024-13-01T00:00:00Z", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00+01:00", 1700000000]
)
def test_an_occurred_at_that_is_not_rfc3339_utc_is_refused(world: World, value: Any) -> None:
    _refused(
        world.recycler, 422, "invalid-payload", "/payload/occurred_at", occurred_at=value, **_intake_fields()
    )


def test_an_unknown_payload_field_is_refused(world: World) -> None:
    _refused(world.recycler, 422, "invalid-payload", "/payload/colour", colour="red", **_intake_fields())


def test_an_unknown_field_in_a_transform_output_is_refused(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    _refused(
        r,
        422,
        "invalid-payload",
        "/payload/outputs/0/origin",
        "transform",
        process="hpms",
        inputs=[{"batch": batch, "mass_g": 10}],
        outputs=[
            {"batch": new_batch_id("evtb"), "material": "alloy_powder", "mass_g": 10, "origin": "primary"}
        ],
    )


def test_a_primary_intake_needs_supplier_and_certificate(world: World) -> None:
    r = world.recycler
    _refused(r, 422, "invalid-payload", "/payload/supplier", **_intake_fields(origin="primary"))
    _refused(
        r,
        422,
        "invalid-payload",
        "/payload/certificate_sha256",
        **_intake_fields(origin="primary", supplier="Mine Co", certificate_sha256="not-a-digest"),
    )


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"id": "not-a-uuid"}, "/payload/id"),
        ({"id": "6F9619FF-8B86-D011-B42D-00C04FC964FF"}, "/payload/id"),
        ({"type": "key_registered"}, "/payload/type"),
        ({"batch": "-bad id"}, "/payload/batch"),
        ({"material": "unobtainium"}, "/payload/material"),
        ({"origin": "recycled"}, "/payload/origin"),
    ],
)
def test_malformed_common_and_intake_fields_are_refused(world: World, changes: dict, pointer: str) -> None:
    r = world.recycler
    payload = r.payload("intake", **_intake_fields())
    payload.update(changes)
    with nothing_written():
        assert_problem(post(r, r.sign(payload)), 422, "invalid-payload", pointer)


def test_split_needs_one_input_and_merge_one_output(world: World) -> None:
    r = world.recycler
    a, b = intake(r, 100), intake(r, 100)
    _refused(
        r,
        422,
        "invalid-payload",
        "/payload/inputs",
        "transform",
        process="split",
        inputs=[{"batch": a, "mass_g": 10}, {"batch": b, "mass_g": 10}],
        outputs=[{"batch": new_batch_id("evtb"), "material": "alloy_powder", "mass_g": 20}],
    )
    _refused(
        r,
        422,
        "invalid-payload",
        "/payload/outputs",
        "transform",
        process="merge",
        inputs=[{"batch": a, "mass_g": 10}],
        outputs=[
            {"batch": new_batch_id("evtb"), "material": "alloy_powder", "mass_g": 5},
            {"batch": new_batch_id("evtb"), "material": "alloy_powder", "mass_g": 5},
        ],
    )


def test_an_envelope_with_an_extra_member_is_refused(world: World) -> None:
    r = world.recycler
    envelope = r.sign(r.payload("intake", **_intake_fields()))
    envelope["comment"] = "hi"
    with nothing_written():
        body = assert_problem(post(r, envelope), 400, "invalid-envelope", "/comment")
    assert "'comment'" in body["detail"]


@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [
        (lambda e: e.update(key_id=e["key_id"].upper()), "/key_id"),
        (lambda e: e.update(signature=e["signature"] + "="), "/signature"),
        (lambda e: e.update(payload=[1, 2]), "/payload"),
    ],
)
def test_a_malformed_envelope_member_is_refused(world: World, mutate: Any, pointer: str) -> None:
    r = world.recycler
    envelope = r.sign(r.payload("intake", **_intake_fields()))
    mutate(envelope)
    with nothing_written():
        assert_problem(post(r, envelope), 400, "invalid-envelope", pointer)
