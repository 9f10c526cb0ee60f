"""write_off: mass leaves the chain with a reason."""

from __future__ import annotations

from ledger.models import EntryBatch
from tests.api.support import batch_of, intake
from tests.conftest import World


def test_write_off_reduces_remaining_mass_and_depletes_at_zero(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)

    first = r.submit_ok("write_off", batch=batch, mass_g=100, reason="sample")
    state = batch_of(r, batch)
    assert (state["remaining_g"], state["status"], state["updated_seq"]) == (900, "active", first["seq"])

    r.submit_ok("write_off", batch=batch, mass_g=900, reason="disposal", note="landfill, permit 42")
    state = batch_of(r, batch)
    assert (state["remaining_g"], state["status"], state["mass_g"]) == (0, "depleted", 1_000)
    assert sorted(
        EntryBatch.objects.filter(batch_id=batch, role="subject").values_list("mass_g", flat=True)
    ) == [
        100,
        900,
    ]
