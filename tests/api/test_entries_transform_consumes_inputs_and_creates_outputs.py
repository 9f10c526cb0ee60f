"""transform: every process consumes its inputs and creates its outputs with their origin."""

from __future__ import annotations

import pytest

from ledger.models import EntryBatch, Process
from tests.api.support import batch_of, intake, transform
from tests.conftest import EV_MAGNET_PPM, World, new_batch_id


@pytest.mark.parametrize("process", [p.value for p in Process])
def test_every_process_is_accepted_and_moves_mass(world: World, process: str) -> None:
    r = world.recycler
    first = intake(r, 10_000, origin="pre_consumer")
    second = intake(r, 4_000, origin="pre_consumer")
    out_a, out_b = new_batch_id("evtb-out"), new_batch_id("evtb-out")
    if process == "merge":
        inputs, outputs = [(first, 6_000), (second, 4_000)], [(out_a, 9_800)]
    elif process == "split":
        inputs, outputs = [(first, 10_000)], [(out_a, 7_000), (out_b, 3_000)]
    else:
        inputs, outputs = [(first, 6_000)], [(out_a, 5_500), (out_b, 400)]

    receipt = transform(r, inputs, outputs, process=process, composition=EV_MAGNET_PPM)

    assert receipt["record"]["envelope"]["payload"]["process"] == process
    consumed = dict(inputs)
    for batch, start in ((first, 10_000), (second, 4_000)):
        state = batch_of(r, batch)
        left = start - consumed.get(batch, 0)
        assert state["remaining_g"] == left
        assert state["status"] == ("depleted" if left == 0 else "active")
        assert state["updated_seq"] == (receipt["seq"] if batch in consumed else state["created_seq"])
    for batch, mass in outputs:
        state = batch_of(r, batch)
        assert (state["mass_g"], state["remaining_g"], state["status"]) == (mass, mass, "active")
        assert state["custodian"] == r.org.slug
        assert state["created_seq"] == receipt["seq"]
        assert state["origin"]["mass"] == {"post_consumer": 0.0, "pre_consumer": 1.0, "primary": 0.0}
        assert state["origin"]["elements"]["Dy"]["pre_consumer"] == 1.0
    links = set(EntryBatch.objects.filter(record_id=receipt["seq"]).values_list("batch_id", "role", "mass_g"))
    assert links == {(b, "input", m) for b, m in inputs} | {(b, "output", m) for b, m in outputs}


def test_a_depleted_batch_reports_zero_remaining(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    transform(r, [(batch, 1_000)], [(new_batch_id("evtb-p"), 990)], process="hpms")
    state = batch_of(r, batch)
    assert (state["remaining_g"], state["status"]) == (0, "depleted")


def test_merge_pools_the_origin_split_per_element_by_element_grams(world: World) -> None:
    """60 % of the Dy grams post-consumer, 40 % primary -> Dy is 0.6 post-consumer, while the
    mass split follows grams of material (300 g vs 800 g)."""
    r = world.recycler
    recycled = intake(r, 1_000, origin="post_consumer", composition={"Nd": 250_000, "Dy": 40_000})
    mined = intake(r, 2_000, origin="primary", composition={"Nd": 300_000, "Dy": 10_000}, material="alloy")
    merged = new_batch_id("evtb-merged")

    # Dy grams: 300 g x 4 % = 12 g post-consumer; 800 g x 1 % = 8 g primary.
    transform(r, [(recycled, 300), (mined, 800)], [(merged, 1_100)], process="merge")

    origin = batch_of(r, merged)["origin"]
    assert origin["elements"]["Dy"] == pytest.approx(
        {"post_consumer": 0.6, "pre_consumer": 0.0, "primary": 0.4}
    )
    # Nd grams: 75 g post-consumer, 240 g primary.
    nd = origin["elements"]["Nd"]
    assert nd["post_consumer"] == pytest.approx(75 / 315)
    assert nd["primary"] == pytest.approx(240 / 315)
    assert origin["mass"]["post_consumer"] == pytest.approx(300 / 1_100)
    assert origin["mass"]["primary"] == pytest.approx(800 / 1_100)
    # Tb is in neither composition: the merged batch holds none, so it has no split at all
    # (absent, which is not the same as unknown).
    assert "Tb" not in origin["elements"]


def test_merge_with_an_unassayed_input_reports_the_element_share_as_unknown(world: World) -> None:
    r = world.recycler
    recycled = intake(r, 1_000, origin="post_consumer", composition={"Dy": 40_000})
    unassayed = intake(r, 1_000, origin="primary", composition=None, material="alloy")
    merged = new_batch_id("evtb-merged")
    transform(r, [(recycled, 500), (unassayed, 500)], [(merged, 1_000)], process="merge")
    origin = batch_of(r, merged)["origin"]
    assert origin["elements"]["Dy"] is None  # never guessed
    assert origin["mass"]["post_consumer"] == pytest.approx(0.5)
