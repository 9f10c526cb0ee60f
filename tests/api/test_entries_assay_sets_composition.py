"""assay: the custodian or a lab sets a batch's composition; newer assays supersede."""

from __future__ import annotations

from accounts.models import Role
from ledger.models import EntryBatch
from tests.api.support import CERT, assert_problem, batch_of, intake, nothing_written
from tests.conftest import World, make_persona

ASSAYED = {"Nd": 240_000, "Pr": 55_000, "Dy": 25_000, "B": 10_000, "Fe": 650_000}


def test_custodian_assay_replaces_the_composition(world: World) -> None:
    r = world.recycler
    batch = intake(r, 2_000)
    receipt = r.submit_ok(
        "assay", batch=batch, composition=ASSAYED, lab="in-house", method="icp-oes", certificate_sha256=CERT
    )
    state = batch_of(r, batch)
    assert state["composition"] == ASSAYED
    assert state["composition_seq"] == receipt["seq"]
    assert state["remaining_g"] == 2_000  # an assay moves no mass
    assert EntryBatch.objects.filter(record_id=receipt["seq"], batch_id=batch, role="subject").exists()

    newer = {"Nd": 230_000, "Dy": 30_000}
    second = r.submit_ok(
        "assay", batch=batch, composition=newer, lab="in-house", method="xrf", certificate_sha256=CERT
    )
    state = batch_of(r, batch)
    assert (state["composition"], state["composition_seq"]) == (newer, second["seq"])


def test_a_lab_may_assay_a_batch_it_does_not_hold(world: World) -> None:
    lab = make_persona("Assay Lab GmbH", "assaylab", Role.LAB)
    r = world.recycler
    batch = intake(r, 2_000)

    receipt = lab.submit_ok(
        "assay",
        batch=batch,
        composition=ASSAYED,
        lab="Assay Lab GmbH",
        method="icp-ms",
        certificate_sha256=CERT,
    )

    assert receipt["org"] == "assaylab"
    state = batch_of(r, batch)
    assert state["composition"] == ASSAYED
    assert state["composition_seq"] == receipt["seq"]
    assert state["custodian"] == r.org.slug  # an assay is no custody step


def test_an_organisation_that_is_not_custodian_nor_lab_cannot_assay(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 2_000)
    with nothing_written():
        response = p.submit(
            "assay", batch=batch, composition=ASSAYED, lab="x", method="xrf", certificate_sha256=CERT
        )
        assert_problem(response, 422, "unknown-batch", "/payload/batch")
