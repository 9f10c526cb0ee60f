"""Flags through the API in the embedded mode (checks run in-process when the entry commits):
what each persona sees, the batch endpoint, acknowledgement and resolution by attest."""

from __future__ import annotations

from typing import Any

import pytest

from checks.models import Flag, FlagStatus, PendingCheck
from ledger.models import LogRecord
from tests.checks.conftest import Chain, flag_keys, submit_chain
from tests.conftest import EV_MAGNET_PPM, World, new_batch_id


@pytest.fixture
def leaky(world: World, django_capture_on_commit_callbacks: Any) -> Chain:
    with django_capture_on_commit_callbacks(execute=True):
        return submit_chain(world, leaky=True)


def test_a_leaky_chain_raises_exactly_the_expected_flags(leaky: Chain) -> None:
    assert flag_keys(Flag.objects.all()) == leaky.expected
    assert not PendingCheck.objects.exists()
    transit = Flag.objects.get(rule="transit_loss")
    assert transit.severity == "warning" and transit.status == FlagStatus.OPEN
    assert transit.evidence["expected_g"] == 36_000 and transit.evidence["actual_g"] == 35_000
    assert transit.seqs == [leaky.seqs["ship"], leaky.seqs["receive"]]
    assert transit.batch_id == leaky.batches["magnets"]
    hpms = Flag.objects.get(rule="yield_out_of_range")
    assert hpms.evidence["actual"] == 0.7 and hpms.evidence["expected_min"] == 0.8
    assert hpms.batch_id == leaky.batches["powder"]


def test_a_clean_chain_raises_none(world: World, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        submit_chain(world, leaky=False)
    assert not Flag.objects.exists()
    assert not PendingCheck.objects.exists()


def test_pending_checks_are_written_with_the_entry(world: World) -> None:
    # Without running the on-commit callbacks the checks stay owed, one per new record.
    receipt = world.recycler.submit_ok(
        "intake", batch=new_batch_id("evtb-x"), material="magnet_scrap", mass_g=10, origin="post_consumer"
    )
    assert list(PendingCheck.objects.values_list("seq", flat=True)) == [receipt["seq"]]


def test_who_sees_which_flag(world: World, leaky: Chain) -> None:
    def rules_seen(persona: Any, query: str = "") -> set[str]:
        response = persona.client.get(f"/api/v1/flags/{query}")
        assert response.status_code == 200, response.json()
        return {f["rule"] for f in response.json()["results"]}

    both = {"transit_loss", "yield_out_of_range"}
    # The recycler is concerned by the transit loss and held the magnets the HPMS step used.
    assert rules_seen(world.recycler) == both
    assert rules_seen(world.processor) == both
    assert rules_seen(world.maker) == {"yield_out_of_range"}  # it holds the HPMS powder
    assert rules_seen(world.auditor) == both
    assert rules_seen(world.oem) == set()
    assert rules_seen(world.outsider) == set()
    assert rules_seen(world.auditor, "?org=evtb") == {"transit_loss"}
    assert rules_seen(world.auditor, f"?batch={leaky.batches['powder']}") == {"yield_out_of_range"}
    assert rules_seen(world.auditor, "?severity=critical") == set()
    assert rules_seen(world.auditor, "?status=open") == both
    hidden = Flag.objects.get(rule="transit_loss")
    assert world.outsider.client.get(f"/api/v1/flags/{hidden.pk}/").status_code == 404


def test_batch_endpoint_shows_flags_and_upstream_flags(world: World, leaky: Chain) -> None:
    body = world.maker.client.get(f"/api/v1/batches/{leaky.batches['powder']}/").json()
    assert [f["rule"] for f in body["flags"]] == ["yield_out_of_range"]
    # The magnets upstream carry the transit loss; the maker cannot see that batch, so it
    # learns that there is an open upstream flag and its rule, not which batch.
    assert body["upstream_flags"] == [{"rule": "transit_loss", "severity": "warning", "status": "open"}]
    body = world.auditor.client.get(f"/api/v1/batches/{leaky.batches['powder']}/").json()
    assert body["upstream_flags"][0]["batch"] == leaky.batches["magnets"]


def test_acknowledge_by_concerned_org_only(world: World, leaky: Chain) -> None:
    flag = Flag.objects.get(rule="yield_out_of_range")
    url = f"/api/v1/flags/{flag.pk}/acknowledge/"
    refused = world.maker.client.post(url)  # sees it (holds the powder) but is not concerned
    assert refused.status_code == 403 and refused.json()["code"] == "flag-not-concerned"
    assert world.outsider.client.post(url).status_code == 404
    ok = world.processor.client.post(url)
    assert ok.status_code == 200 and ok.json()["status"] == "acknowledged"
    flag.refresh_from_db()
    assert flag.status == FlagStatus.ACKNOWLEDGED and flag.acknowledged_by == world.processor.org


def test_only_an_auditor_attests_and_the_attest_resolves_the_flag(
    world: World, leaky: Chain, django_capture_on_commit_callbacks: Any
) -> None:
    flag = Flag.objects.get(rule="transit_loss")
    size = LogRecord.objects.count()
    refused = world.processor.submit("attest", subject={"flag": flag.pk}, verdict="resolved", note="fine")
    assert refused.status_code == 403 and refused.json()["code"] == "attest-not-auditor"
    assert LogRecord.objects.count() == size
    missing = world.auditor.submit("attest", subject={"flag": 10**9}, verdict="resolved", note="x")
    assert missing.status_code == 422 and missing.json()["code"] == "unknown-flag"
    with django_capture_on_commit_callbacks(execute=True):
        receipt = world.auditor.submit_ok(
            "attest",
            subject={"flag": flag.pk},
            verdict="resolved",
            note="Weighbridge recalibrated; re-weighed.",
        )
    flag.refresh_from_db()
    assert flag.status == FlagStatus.RESOLVED
    assert flag.resolution_seq == receipt["seq"] and flag.resolved_by == world.auditor.org
    body = world.recycler.client.get(f"/api/v1/flags/{flag.pk}/").json()
    assert body["resolution"]["verdict"] == "resolved" and body["resolution"]["by"] == "certbody"
    again = world.auditor.submit("attest", subject={"flag": flag.pk}, verdict="resolved", note="again")
    assert again.status_code == 409 and again.json()["code"] == "flag-resolved"
    # The maker's powder no longer carries an open upstream flag.
    powder = world.maker.client.get(f"/api/v1/batches/{leaky.batches['powder']}/").json()
    assert powder["upstream_flags"] == []


def test_attest_on_a_batch_is_linked_to_it(world: World, leaky: Chain) -> None:
    receipt = world.auditor.submit_ok(
        "attest", subject={"batch": leaky.batches["powder"]}, verdict="confirmed", note="Site visit."
    )
    seqs = [
        e["seq"]
        for e in world.auditor.client.get(f"/api/v1/entries/?batch={leaky.batches['powder']}").json()[
            "results"
        ]
    ]
    assert receipt["seq"] in seqs
    bad = world.auditor.submit("attest", subject={"seq": 10**6}, verdict="confirmed", note="x")
    assert bad.status_code == 422


def test_element_gain_is_critical_and_unassayed_claim_is_raised(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    r, p = world.recycler, world.processor
    scrap, more, bare = new_batch_id("evtb-s"), new_batch_id("evtb-more"), new_batch_id("evtb-bare")
    with django_capture_on_commit_callbacks(execute=True):
        r.submit_ok(
            "intake",
            batch=scrap,
            material="magnet_scrap",
            mass_g=100_000,
            origin="post_consumer",
            composition=EV_MAGNET_PPM,
        )
        gain = r.submit_ok(
            "transform",
            process="split",
            inputs=[{"batch": scrap, "mass_g": 50_000}],
            outputs=[
                {
                    "batch": more,
                    "material": "magnet_scrap",
                    "mass_g": 50_000,
                    "composition": {**EV_MAGNET_PPM, "Dy": 40_000, "Fe": 640_000},
                }
            ],
        )
        r.submit_ok(
            "transform",
            process="split",
            inputs=[{"batch": scrap, "mass_g": 50_000}],
            outputs=[{"batch": bare, "material": "magnet_scrap", "mass_g": 50_000}],
        )
        ship = r.submit_ok("ship", batch=bare, mass_g=50_000, to_org=p.org.slug)
    assert flag_keys(Flag.objects.all()) == {
        ("element_gain", f"entry:{gain['seq']}"),
        ("unassayed_claim", f"batch:{bare}"),
    }
    critical = Flag.objects.get(rule="element_gain")
    assert critical.severity == "critical" and critical.evidence["gained"] == ["Dy"]
    assert critical.evidence["elements"]["Dy"] == {"in_g": 1000, "out_g": 2000, "gain_g": 1000}
    assert Flag.objects.get(rule="unassayed_claim").seqs == [ship["seq"]]


def test_flag_list_and_batch_list_have_no_n_plus_one(
    world: World, django_capture_on_commit_callbacks: Any, django_assert_max_num_queries: Any
) -> None:
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            submit_chain(world, leaky=True)
    assert Flag.objects.count() == 6
    with django_assert_max_num_queries(8):
        response = world.auditor.client.get("/api/v1/flags/")
    assert len(response.json()["results"]) == 6
    # batches: auth, list, open shipments, flags on the page, upstream flags (one recursive query)
    with django_assert_max_num_queries(8):
        response = world.auditor.client.get("/api/v1/batches/?limit=100")
    results = response.json()["results"]
    assert len(results) >= 12
    # per chain: the transit loss on the magnets, the yield on the magnets and the powder
    assert sum(len(b["flags"]) for b in results) == 9
