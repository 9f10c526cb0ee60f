"""An OEM sees where its material came from, not where the rest of an upstream batch went."""

from tests.conftest import EV_MAGNET_PPM, World, new_batch_id


def test_oem_does_not_see_a_sibling_branch_of_its_pedigree(world: World):
    m, oem = world.maker, world.oem
    scrap = new_batch_id("magm-scrap")
    m.submit_ok(
        "intake",
        batch=scrap,
        material="magnet_scrap",
        mass_g=10_000,
        composition=EV_MAGNET_PPM,
        origin="post_consumer",
    )
    ours, theirs = new_batch_id("magm-lot-a"), new_batch_id("magm-lot-b")
    mine = m.submit_ok(
        "transform",
        process="sintering",
        inputs=[{"batch": scrap, "mass_g": 6_000}],
        outputs=[{"batch": ours, "material": "magnet", "mass_g": 5_800}],
    )
    other = m.submit_ok(
        "transform",
        process="sintering",
        inputs=[{"batch": scrap, "mass_g": 4_000}],
        outputs=[{"batch": theirs, "material": "magnet", "mass_g": 3_900}],
    )
    m.submit_ok("ship", batch=ours, mass_g=5_800, to_org=oem.org.slug)
    oem.submit_ok("receive", batch=ours, mass_g=5_800)

    seen = {e["seq"] for e in oem.client.get(f"/api/v1/entries/?batch={scrap}").json()["results"]}

    assert mine["seq"] in seen
    assert other["seq"] not in seen
    assert oem.client.get(f"/api/v1/entries/{other['seq']}/").status_code == 404
    assert oem.client.get(f"/api/v1/batches/{theirs}/").status_code == 404
