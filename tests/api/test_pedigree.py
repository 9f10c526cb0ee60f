"""GET /api/v1/batches/{id}/pedigree/: provenance to every intake, recycled share per element."""

import pytest

from tests.conftest import EV_MAGNET_PPM, World, new_batch_id

PRIMARY_PPM = {"Nd": 290000, "Pr": 10000, "Dy": 0, "B": 10000, "Fe": 690000}


@pytest.fixture
def magnet_lot(world: World) -> dict[str, str]:
    """Recycled scrap (post-consumer) blended with primary alloy at the maker, shipped to the OEM."""
    r, m, oem = world.recycler, world.maker, world.oem
    scrap = new_batch_id("evtb-scrap")
    r.submit_ok(
        "intake",
        batch=scrap,
        material="magnet_scrap",
        mass_g=40_000,
        composition=EV_MAGNET_PPM,
        origin="post_consumer",
    )
    r.submit_ok("ship", batch=scrap, mass_g=40_000, to_org=m.org.slug)
    m.submit_ok("receive", batch=scrap, mass_g=40_000)
    primary = new_batch_id("magm-primary")
    m.submit_ok(
        "intake",
        batch=primary,
        material="alloy",
        mass_g=60_000,
        composition=PRIMARY_PPM,
        origin="primary",
        supplier="Mine Co",
        certificate_sha256="a" * 64,
    )
    alloy = new_batch_id("magm-alloy")
    m.submit_ok(
        "transform",
        process="alloying",
        inputs=[{"batch": scrap, "mass_g": 40_000}, {"batch": primary, "mass_g": 60_000}],
        outputs=[
            {
                "batch": alloy,
                "material": "alloy",
                "mass_g": 99_000,
                "composition": {"Nd": 266000, "Pr": 30000, "Dy": 8000, "B": 10000, "Fe": 686000},
            }
        ],
        losses=[{"kind": "dross", "mass_g": 1_000}],
    )
    lot = new_batch_id("magm-lot")
    m.submit_ok(
        "transform",
        process="sintering",
        inputs=[{"batch": alloy, "mass_g": 99_000}],
        outputs=[
            {
                "batch": lot,
                "material": "magnet",
                "mass_g": 74_000,
                "composition": {"Nd": 266000, "Pr": 30000, "Dy": 8000, "B": 10000, "Fe": 686000},
            },
            {"batch": lot + "-swarf", "material": "swarf", "mass_g": 25_000},
        ],
    )
    m.submit_ok("ship", batch=lot, mass_g=74_000, to_org=oem.org.slug)
    oem.submit_ok("receive", batch=lot, mass_g=74_000)
    return {"scrap": scrap, "primary": primary, "alloy": alloy, "lot": lot}


def test_oem_sees_the_whole_pedigree_and_recycled_share_per_element(
    world, magnet_lot, django_assert_max_num_queries
):
    with django_assert_max_num_queries(20):
        body = world.oem.client.get(f"/api/v1/batches/{magnet_lot['lot']}/pedigree/").json()
    assert {n["id"] for n in body["nodes"]} == set(magnet_lot.values())
    assert body["redacted_batches"] == 0
    assert body["intakes_by_origin_g"] == {"post_consumer": 40_000, "pre_consumer": 0, "primary": 60_000}
    dy = body["recycled_content"]["elements"]["Dy"]
    # All Dy came from the recycled scrap: 40 kg x 2 % = 800 g, none from the primary alloy.
    assert dy["shares"]["post_consumer"] == 1.0
    assert dy["status"] == "known"
    nd = body["recycled_content"]["elements"]["Nd"]
    # Nd: 40 kg x 23 % = 9.2 kg post-consumer vs 60 kg x 29 % = 17.4 kg primary.
    assert nd["shares"]["post_consumer"] == pytest.approx(9_200 / 26_600, abs=1e-6)
    assert body["recycled_content"]["mass"]["post_consumer"] == pytest.approx(0.4)
    processes = [s.get("process") for s in body["steps"] if s["type"] == "transform"]
    assert processes == ["alloying", "sintering"]


def test_a_processor_sees_only_its_own_part_of_the_pedigree(world, magnet_lot):
    body = world.maker.client.get(f"/api/v1/batches/{magnet_lot['lot']}/pedigree/").json()
    # The maker held the scrap, the primary alloy, the alloy and the lot: all visible...
    assert {n["id"] for n in body["nodes"]} == set(magnet_lot.values())
    # ...but the recycler's intake and ship entries are not the maker's to read.
    assert {s["org"] for s in body["steps"]} == {world.maker.org.slug}


def test_unassayed_element_grams_are_unknown_not_guessed(world):
    r = world.recycler
    batch = new_batch_id("evtb-raw")
    r.submit_ok("intake", batch=batch, material="magnet_scrap", mass_g=5_000, origin="post_consumer")
    body = r.client.get(f"/api/v1/batches/{batch}/pedigree/").json()
    dy = body["recycled_content"]["elements"]["Dy"]
    assert dy["grams"] is None and dy["status"] == "unassayed"


def test_pedigree_of_an_invisible_batch_is_404(world, magnet_lot):
    response = world.outsider.client.get(f"/api/v1/batches/{magnet_lot['lot']}/pedigree/")
    missing = world.outsider.client.get("/api/v1/batches/no-such-batch/pedigree/")
    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json()
