"""GET /api/v1/batches/{id}/bundle/: the whole upstream graph with key records, a covering
checkpoint and a proof for every record, for whoever may see the batch; it verifies offline."""

from __future__ import annotations

import itertools
from typing import Any

from rest_framework.test import APIClient

from ledger.models import Batch, Checkpoint, EntryBatch, LogRecord
from ledger.protocol.bundle import BUNDLE_FORMAT, load_bundle, verify_bundle
from tests.conftest import World, new_batch_id
from tests.transparency.support import build_pedigree


def test_the_oem_gets_a_bundle_that_verifies_offline(world: World, settings: Any) -> None:
    ids = build_pedigree(world)
    unrelated = new_batch_id("evtb-other")
    world.recycler.submit_ok("intake", batch=unrelated, material="swarf", mass_g=3, origin="pre_consumer")
    assert not Checkpoint.objects.exists()  # no beat, no on-commit hook inside a test transaction

    response = world.oem.client.get(f"/api/v1/batches/{ids.magnets}/bundle/")
    assert response.status_code == 200
    bundle = load_bundle(response.content)
    assert bundle["format"] == BUNDLE_FORMAT

    seqs = [item["record"]["seq"] for item in bundle["records"]]
    graph = {ids.motors, ids.scrap, ids.powder, ids.magnets}
    linked = set(
        EntryBatch.objects.filter(batch_id__in=graph, role__in=["output", "subject"]).values_list(
            "record_id", flat=True
        )
    )
    signers = {LogRecord.objects.get(seq=s).key_id for s in linked}
    key_records = set(
        LogRecord.objects.filter(entry_type="key_registered", canonical__regex="|".join(signers)).values_list(
            "seq", flat=True
        )
    )
    assert seqs == sorted(linked | key_records)
    unrelated_seq = LogRecord.objects.get(links__batch_id=unrelated).seq
    assert unrelated_seq not in seqs
    assert {k["org"] for k in bundle["keys"]} == {"evtb", "hpms", "magm", "motorwerk"}

    checkpoint = Checkpoint.objects.get()  # published on demand to cover every record
    assert bundle["checkpoint"] == checkpoint.note and checkpoint.size > max(seqs)
    magnets = Batch.objects.get(pk=ids.magnets)
    assert bundle["claims"]["origin"] == magnets.origin
    assert bundle["claims"]["custodian"] == "motorwerk"

    vkey = APIClient().get("/api/v1/log/").json()["vkey"]
    report = verify_bundle(bundle, trusted_vkey=vkey)
    assert report.ok, [str(f) for f in report.failures]
    assert report.records == len(seqs)
    assert report.figures is not None and report.figures["origin"] == magnets.origin


def test_the_bundle_holds_what_the_oem_may_see_and_not_a_sibling_branch(world: World) -> None:
    r, oem = world.recycler, world.oem
    scrap, lot, sibling = new_batch_id("evtb-scrap"), new_batch_id("evtb-lot"), new_batch_id("evtb-sib")
    r.submit_ok("intake", batch=scrap, material="magnet_scrap", mass_g=1000, origin="post_consumer")
    r.submit_ok(
        "transform",
        process="split",
        inputs=[{"batch": scrap, "mass_g": 600}],
        outputs=[{"batch": lot, "material": "magnet_scrap", "mass_g": 600}],
    )
    r.submit_ok("ship", batch=lot, mass_g=600, to_org=oem.org.slug)
    oem.submit_ok("receive", batch=lot, mass_g=600)
    # The rest of the shared ancestor goes into another branch: not the OEM's business.
    branch = r.submit_ok(
        "transform",
        process="split",
        inputs=[{"batch": scrap, "mass_g": 400}],
        outputs=[{"batch": sibling, "material": "magnet_scrap", "mass_g": 400}],
    )
    bundle = oem.client.get(f"/api/v1/batches/{lot}/bundle/").json()
    seqs = {item["record"]["seq"] for item in bundle["records"]}
    assert branch["seq"] not in seqs
    visible = set(LogRecord.objects.visible_to(oem.user).values_list("seq", flat=True))
    key_records = set(LogRecord.objects.filter(entry_type="key_registered").values_list("seq", flat=True))
    assert seqs - key_records <= visible
    assert len(seqs - key_records) == 4
    assert verify_bundle(bundle).ok


def test_a_batch_one_may_not_see_is_404(world: World) -> None:
    ids = build_pedigree(world)
    for persona in (world.outsider, world.recycler):  # the recycler held only upstream batches
        response = persona.client.get(f"/api/v1/batches/{ids.magnets}/bundle/")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
    assert APIClient().get(f"/api/v1/batches/{ids.magnets}/bundle/").status_code == 401
    assert world.auditor.client.get(f"/api/v1/batches/{ids.magnets}/bundle/").status_code == 200
    assert world.oem.client.get("/api/v1/batches/no-such-batch/bundle/").status_code == 404


def test_the_bundle_costs_a_bounded_number_of_queries(
    world: World, django_assert_max_num_queries: Any
) -> None:
    ids = build_pedigree(world)
    world.oem.client.get(f"/api/v1/batches/{ids.magnets}/bundle/")  # publishes the checkpoint
    # token 1, batch 1, ancestry 1 per generation (3) + 1, records 1, keys 1, key records 1,
    # checkpoint 1, tree nodes 1
    with django_assert_max_num_queries(11):
        response = world.oem.client.get(f"/api/v1/batches/{ids.magnets}/bundle/")
    assert response.status_code == 200
    # a longer chain costs one more query per generation, not per record
    r = world.recycler
    lots = [new_batch_id("evtb-chain") for _ in range(30)]
    r.submit_ok("intake", batch=lots[0], material="swarf", mass_g=1000, origin="pre_consumer")
    for parent, child in itertools.pairwise(lots):
        r.submit_ok(
            "transform",
            process="split",
            inputs=[{"batch": parent, "mass_g": 1000}],
            outputs=[{"batch": child, "material": "swarf", "mass_g": 1000}],
        )
    world.auditor.client.get(f"/api/v1/batches/{lots[-1]}/bundle/")
    with django_assert_max_num_queries(7 + 30):
        assert world.auditor.client.get(f"/api/v1/batches/{lots[-1]}/bundle/").status_code == 200
