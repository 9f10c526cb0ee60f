"""ship puts a whole batch in transit; receive by the named recipient moves custody."""

from __future__ import annotations

from ledger.models import Shipment
from tests.api.support import batch_of, intake
from tests.conftest import World


def test_ship_puts_the_batch_in_transit_and_receive_moves_custody(world: World) -> None:
    r, p = world.recycler, world.processor
    batch = intake(r, 36_000)

    shipped = r.submit_ok("ship", batch=batch, mass_g=36_000, to_org=p.org.slug, to_facility=p.facility.code)

    state = batch_of(r, batch)
    assert state["status"] == "in_transit"
    assert state["custodian"] == r.org.slug  # custody moves only on receipt
    assert state["remaining_g"] == 36_000
    assert state["in_transit"]["ship_seq"] == shipped["seq"]
    assert state["in_transit"]["to_org"] == p.org.slug
    assert state["in_transit"]["mass_g"] == 36_000
    assert state["updated_seq"] == shipped["seq"]
    shipment = Shipment.objects.get(batch_id=batch)
    assert (shipment.sender_id, shipment.recipient_id, shipment.receive_seq) == (r.org.pk, p.org.pk, None)
    assert shipment.recipient_facility == p.facility

    received = p.submit_ok("receive", batch=batch, mass_g=35_900)

    state = batch_of(p, batch)
    assert state["status"] == "active"
    assert state["custodian"] == p.org.slug
    assert state["facility"] == p.facility.code
    assert state["in_transit"] is None
    # Custody moves with what physically arrived; the 100 g difference is a flag's business.
    assert state["remaining_g"] == 35_900
    assert state["mass_g"] == 36_000
    assert state["updated_seq"] == received["seq"]
    shipment.refresh_from_db()
    assert (shipment.receive_seq, shipment.received_mass_g) == (received["seq"], 35_900)
    # The sender held the batch, so it still sees it (now in someone else's custody).
    assert batch_of(r, batch)["custodian"] == p.org.slug


def test_a_received_batch_can_be_shipped_on(world: World) -> None:
    r, p, m = world.recycler, world.processor, world.maker
    batch = intake(r, 5_000)
    r.submit_ok("ship", batch=batch, mass_g=5_000, to_org=p.org.slug)
    p.submit_ok("receive", batch=batch, mass_g=5_000)
    p.submit_ok("ship", batch=batch, mass_g=5_000, to_org=m.org.slug)
    m.submit_ok("receive", batch=batch, mass_g=4_990)
    state = batch_of(m, batch)
    assert (state["custodian"], state["remaining_g"], state["status"]) == (m.org.slug, 4_990, "active")
    assert Shipment.objects.filter(batch_id=batch, receive_seq__isnull=False).count() == 2
