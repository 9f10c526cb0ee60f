"""Run the soft rules (checks.rules, pure functions) over the seeded log: exactly the two
deliberate anomalies are found, so an edit of ledger/demo.py cannot add an accidental one."""

from __future__ import annotations

from typing import Any

import pytest

from checks import rules
from ledger import demo
from ledger.models import LogRecord, Shipment
from tests.demo.conftest import run


def findings_of_the_seeded_log() -> list[rules.Finding]:
    """Replay the log in seq order, knowing each batch's material and latest composition
    at the time it is used, as the checks see them."""
    composition: dict[str, Any] = {}
    material: dict[str, str] = {}
    found = []
    for record in LogRecord.objects.order_by("seq"):
        p = record.payload
        if p["type"] == "intake":
            material[p["batch"]] = p["material"]
            composition[p["batch"]] = p.get("composition")
        elif p["type"] == "assay":
            composition[p["batch"]] = p["composition"]
        elif p["type"] == "transform":
            inputs = tuple(
                rules.Item(i["batch"], material[i["batch"]], i["mass_g"], composition.get(i["batch"]))
                for i in p["inputs"]
            )
            outputs = tuple(
                rules.Item(o["batch"], o["material"], o["mass_g"], o.get("composition")) for o in p["outputs"]
            )
            for o in p["outputs"]:
                material[o["batch"]] = o["material"]
                composition[o["batch"]] = o.get("composition")
            losses = tuple(rules.Loss(x["kind"], x["mass_g"]) for x in p.get("losses", []))
            transform = rules.Transform(record.seq, p["process"], inputs, outputs, losses)
            found += rules.check_transform(transform, rules.limits_for(p["process"]))
    for s in Shipment.objects.all():
        assert s.receive_seq is not None and s.received_mass_g is not None
        transit = rules.Transit(s.batch_id, s.ship_seq, s.receive_seq, s.mass_g, s.received_mass_g)
        finding = rules.transit(transit, rules.limits_for("*"))
        if finding is not None:
            found.append(finding)
    return found


@pytest.mark.django_db
def test_the_soft_rules_find_the_leaky_transfer_and_the_low_hpms_yield_and_nothing_else() -> None:
    run("seed_demo")

    found = sorted(findings_of_the_seeded_log(), key=lambda f: f.rule)

    assert [(f.rule, f.batch) for f in found] == [
        (rules.TRANSIT_LOSS, demo.BATCHES["powder"]),
        (rules.YIELD_OUT_OF_RANGE, demo.BATCHES["powder_run_b"]),
    ]
    transit, low_yield = found
    assert transit.evidence["expected_g"] == demo.POWDER_G
    assert transit.evidence["actual_g"] == demo.POWDER_RECEIVED_G
    assert low_yield.evidence["actual"] == pytest.approx(0.70, abs=0.001)
    assert low_yield.evidence["expected_min"] == 0.8
