from tests.conftest import EV_MAGNET_PPM, World, new_batch_id


def test_a_chain_from_take_back_to_oem(world: World) -> None:
    r, p = world.recycler, world.processor
    motors = new_batch_id("evtb-motors")
    r.submit_ok(
        "intake",
        batch=motors,
        material="eol_product",
        mass_g=1_200_000,
        origin="post_consumer",
        product="ev_traction_motor",
        units=20,
    )
    magnets = new_batch_id("evtb-mag")
    steel = new_batch_id("evtb-steel")
    r.submit_ok(
        "transform",
        process="dismantling",
        inputs=[{"batch": motors, "mass_g": 1_200_000}],
        outputs=[
            {"batch": magnets, "material": "magnet_scrap", "mass_g": 36_000, "composition": EV_MAGNET_PPM},
            {"batch": steel, "material": "residue", "mass_g": 1_150_000},
        ],
        losses=[{"kind": "dust", "mass_g": 14_000}],
    )
    r.submit_ok("ship", batch=magnets, mass_g=36_000, to_org=p.org.slug)
    receipt = p.submit_ok("receive", batch=magnets, mass_g=35_900)
    assert receipt["record"]["envelope"]["payload"]["type"] == "receive"
    batch = p.client.get(f"/api/v1/batches/{magnets}/").json()
    assert batch["custodian"] == p.org.slug
    assert batch["remaining_g"] == 35_900
    assert batch["origin"]["elements"]["Dy"]["post_consumer"] == 1.0
