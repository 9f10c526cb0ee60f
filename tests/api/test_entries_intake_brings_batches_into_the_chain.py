"""intake: a new batch enters the chain, wholly of its declared origin."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.models import EntryBatch, LogRecord
from ledger.origin import CRMA_ELEMENTS
from tests.api.support import CERT, batch_of
from tests.conftest import EV_MAGNET_PPM, World, new_batch_id

ORIGIN_FIELDS: dict[str, dict[str, Any]] = {
    "post_consumer": {"product": "ev_traction_motor", "units": 20, "material": "eol_product"},
    "pre_consumer": {"material": "swarf"},
    "primary": {"supplier": "Mountain Pass Oxides", "certificate_sha256": CERT, "material": "metal"},
}


@pytest.mark.parametrize("origin", ["post_consumer", "pre_consumer", "primary"])
def test_intake_of_each_origin_creates_an_active_batch_held_by_the_submitter(
    world: World, origin: str
) -> None:
    r = world.recycler
    batch = new_batch_id("evtb")
    records_before = LogRecord.objects.count()

    receipt = r.submit_ok(
        "intake",
        batch=batch,
        mass_g=250_000,
        origin=origin,
        composition=EV_MAGNET_PPM,
        **ORIGIN_FIELDS[origin],
    )

    assert receipt["replayed"] is False
    assert receipt["type"] == "intake"
    assert receipt["org"] == r.org.slug
    assert receipt["seq"] == records_before  # gapless: the next seq
    payload = receipt["record"]["envelope"]["payload"]
    assert payload["batch"] == batch and payload["origin"] == origin
    assert LogRecord.objects.count() == records_before + 1

    state = batch_of(r, batch)
    assert state["mass_g"] == state["remaining_g"] == 250_000
    assert state["status"] == "active"
    assert state["custodian"] == r.org.slug
    assert state["facility"] == r.facility.code
    assert state["in_transit"] is None
    assert state["material"] == ORIGIN_FIELDS[origin]["material"]
    assert state["composition"] == EV_MAGNET_PPM
    assert state["composition_seq"] == receipt["seq"] == state["created_seq"]
    pure = {o: (1.0 if o == origin else 0.0) for o in ("post_consumer", "pre_consumer", "primary")}
    assert state["origin"]["mass"] == pure
    assert set(state["origin"]["elements"]) == set(CRMA_ELEMENTS)
    assert all(share == pure for share in state["origin"]["elements"].values())
    assert list(EntryBatch.objects.filter(record_id=receipt["seq"]).values_list("batch_id", "role")) == [
        (batch, "output")
    ]


def test_intake_without_composition_leaves_composition_unknown(world: World) -> None:
    r = world.recycler
    batch = new_batch_id("evtb")
    r.submit_ok("intake", batch=batch, material="eol_product", mass_g=900, origin="post_consumer")
    state = batch_of(r, batch)
    assert state["composition"] is None
    assert state["composition_seq"] is None
    assert state["origin"]["mass"]["post_consumer"] == 1.0
