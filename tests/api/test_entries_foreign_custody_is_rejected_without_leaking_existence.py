"""Only the custodian uses a batch. An organisation that never saw a batch is told it does
not exist, exactly as for an id that was never used: no existence leak."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import CERT, assert_problem, hand_over, intake, nothing_written
from tests.conftest import Persona, World, new_batch_id


def _use(persona: Persona, kind: str, batch: str) -> Any:
    if kind == "transform":
        return persona.submit(
            "transform",
            process="shredding",
            inputs=[{"batch": batch, "mass_g": 10}],
            outputs=[{"batch": new_batch_id("x"), "material": "magnet_scrap", "mass_g": 10}],
        )
    if kind == "write_off":
        return persona.submit("write_off", batch=batch, mass_g=10, reason="sample")
    if kind == "ship":
        return persona.submit("ship", batch=batch, mass_g=1_000, to_org="magm")
    return persona.submit(
        "assay", batch=batch, composition={"Dy": 1}, lab="x", method="xrf", certificate_sha256=CERT
    )


POINTERS = {
    "transform": "/payload/inputs/0/batch",
    "write_off": "/payload/batch",
    "ship": "/payload/batch",
    "assay": "/payload/batch",
}


@pytest.mark.parametrize("kind", ["transform", "write_off", "ship", "assay"])
def test_former_custodian_is_told_it_is_no_longer_custodian(world: World, kind: str) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 1_000)
    hand_over(r, p, batch, 1_000)
    with nothing_written():
        assert_problem(_use(r, kind, batch), 409, "not-custodian", POINTERS[kind])


@pytest.mark.parametrize("kind", ["transform", "write_off", "ship", "assay"])
def test_an_organisation_that_never_saw_the_batch_gets_the_same_answer_as_for_no_batch(
    world: World, kind: str
) -> None:
    r, outsider = world.recycler, world.outsider
    batch = intake(r, 1_000)
    with nothing_written():
        foreign = assert_problem(_use(outsider, kind, batch), 422, "unknown-batch", POINTERS[kind])
        missing_id = new_batch_id("evtb")
        missing = assert_problem(_use(outsider, kind, missing_id), 422, "unknown-batch", POINTERS[kind])
    assert foreign["detail"].replace(batch, "ID") == missing["detail"].replace(missing_id, "ID")
    assert foreign["title"] == missing["title"] and foreign["hint"] == missing["hint"]


def test_an_unknown_batch_is_refused(world: World) -> None:
    r = world.recycler
    with nothing_written():
        response = r.submit("write_off", batch="evtb-never-was", mass_g=1, reason="sample")
        assert_problem(response, 422, "unknown-batch", "/payload/batch")
        response = r.submit("receive", batch="evtb-never-was", mass_g=1)
        assert_problem(response, 422, "unknown-batch", "/payload/batch")


def test_an_intake_reusing_a_batch_id_is_refused(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    with nothing_written():
        response = r.submit("intake", batch=batch, material="swarf", mass_g=5, origin="pre_consumer")
        assert_problem(response, 409, "batch-exists", "/payload/batch")
