"""The log as the API serves it: every record, gapless from seq 0, each chained to the one
before, each leaf hash recomputable from the served record alone (RFC 8785 + SHA-256), each
signature verifiable with the served keys. Filters and cursor pagination on the list."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import urlsplit

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.api.support import assert_problem, bulk, hand_over, intake, transform
from tests.conftest import Persona, World, new_batch_id

ZERO = "0" * 64


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def list_all(persona: Persona, query: str = "") -> tuple[list[dict[str, Any]], int]:
    """Every entry visible to ``persona``, following the cursor ``next`` links; and the
    number of pages fetched."""
    url: str | None = f"/api/v1/entries/?{query}"
    results: list[dict[str, Any]] = []
    pages = 0
    while url:
        response = persona.client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        results += body["results"]
        pages += 1
        nxt = body["next"]
        url = None if nxt is None else (lambda u: f"{u.path}?{u.query}")(urlsplit(nxt))
        assert pages < 1_000
    return results, pages


def mixed_sequence(world: World) -> dict[str, str]:
    """intake, transform, ship, receive, assay, write_off, a bulk and a key revocation."""
    r, p, m = world.recycler, world.processor, world.maker
    motors = intake(r, 100_000, material="eol_product", composition=None)
    scrap, steel = new_batch_id("evtb-scrap"), new_batch_id("evtb-steel")
    transform(r, [(motors, 100_000)], [(scrap, 3_000), (steel, 96_000)], process="dismantling")
    hand_over(r, p, scrap, 3_000)
    p.submit_ok(
        "assay",
        batch=scrap,
        composition={"Nd": 230_000, "Dy": 20_000},
        lab="l",
        method="m",
        certificate_sha256="ab" * 32,
    )
    powder = new_batch_id("hpms-powder")
    transform(p, [(scrap, 3_000)], [(powder, 2_950)], process="hpms")
    hand_over(p, m, powder, 2_950)
    r.submit_ok("write_off", batch=steel, mass_g=96_000, reason="disposal")
    extra = [
        m.sign(
            m.payload("intake", batch=new_batch_id("magm"), material="swarf", mass_g=5, origin="pre_consumer")
        )
        for _ in range(3)
    ]
    assert bulk(m, extra).status_code == 201
    key_id = m.sign(m.payload("intake"))["key_id"]
    assert m.client.post(f"/api/v1/keys/{key_id}/revoke/", {}, format="json").status_code == 200
    return {"motors": motors, "scrap": scrap, "steel": steel, "powder": powder}


def test_the_auditor_reads_the_whole_chain_and_it_verifies(world: World) -> None:
    mixed_sequence(world)
    auditor = world.auditor

    records, pages = list_all(auditor, "limit=5")
    size = auditor.client.get("/api/v1/log/").json()["size"]
    assert len(records) == size
    assert pages == -(-size // 5)
    assert [x["seq"] for x in records] == list(range(size))

    keys_body = auditor.client.get("/api/v1/keys/").json()
    keys = {k["key_id"]: k["public_key"] for k in keys_body["results"]}
    log = auditor.client.get("/api/v1/log/").json()
    keys[log["log_key_id"]] = log["public_key"]

    prev = ZERO
    types = set()
    for item in records:
        record = item["record"]
        assert set(record) == {"seq", "recorded_at", "prev", "envelope"}
        assert set(record["envelope"]) == {"payload", "key_id", "signature"}
        assert record["seq"] == item["seq"]
        assert record["prev"] == prev
        leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(record)).hexdigest()
        assert leaf == item["leaf_hash"]
        envelope = record["envelope"]
        public = Ed25519PublicKey.from_public_bytes(_b64url(keys[envelope["key_id"]]))
        public.verify(_b64url(envelope["signature"]), rfc8785.dumps(envelope["payload"]))  # raises if bad
        assert item["entry_id"] == envelope["payload"]["id"]
        assert item["type"] == envelope["payload"]["type"]
        assert item["org"] == envelope["payload"]["org"]
        types.add(item["type"])
        prev = leaf
    assert types == {
        "key_registered",
        "key_revoked",
        "intake",
        "transform",
        "ship",
        "receive",
        "assay",
        "write_off",
    }


def test_default_pages_hold_a_hundred_records(world: World) -> None:
    r = world.recycler
    envelopes = [
        r.sign(
            r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1, origin="pre_consumer")
        )
        for _ in range(120)
    ]
    assert bulk(r, envelopes).status_code == 201
    first = world.auditor.client.get("/api/v1/entries/").json()
    assert len(first["results"]) == 100 and first["next"] and first["previous"] is None
    records, pages = list_all(world.auditor)
    assert pages == 2 and len(records) == 126  # 6 key registrations + 120 intakes


def test_a_record_is_served_alone_with_its_receipt(world: World) -> None:
    r = world.recycler
    receipt = r.submit_ok(
        "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1, origin="pre_consumer"
    )
    response = r.client.get(f"/api/v1/entries/{receipt['seq']}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["seq"], body["leaf_hash"], body["record"]) == (
        receipt["seq"],
        receipt["leaf_hash"],
        receipt["record"],
    )


def test_filters_by_batch_type_org_and_after(world: World) -> None:
    batches = mixed_sequence(world)
    auditor = world.auditor
    everything, _ = list_all(auditor)

    def payload_batches(item: dict[str, Any]) -> set[str]:
        payload = item["record"]["envelope"]["payload"]
        found = {payload["batch"]} if "batch" in payload else set()
        for side in ("inputs", "outputs"):
            found |= {x["batch"] for x in payload.get(side, [])}
        return found

    for name, batch in batches.items():
        got, _ = list_all(auditor, f"batch={batch}")
        expected = [x["seq"] for x in everything if batch in payload_batches(x)]
        assert [x["seq"] for x in got] == expected, name
        assert expected

    for type_ in (
        "intake",
        "transform",
        "ship",
        "receive",
        "assay",
        "write_off",
        "key_registered",
        "key_revoked",
    ):
        got, _ = list_all(auditor, f"type={type_}")
        assert [x["seq"] for x in got] == [x["seq"] for x in everything if x["type"] == type_]
        assert got

    for persona in world.all():
        got, _ = list_all(auditor, f"org={persona.org.slug}")
        assert [x["seq"] for x in got] == [x["seq"] for x in everything if x["org"] == persona.org.slug]

    got, _ = list_all(auditor, "after=10")
    assert [x["seq"] for x in got] == list(range(11, len(everything)))
    got, _ = list_all(auditor, f"after=10&type=intake&org={world.maker.org.slug}")
    assert [x["seq"] for x in got] == [
        x["seq"]
        for x in everything
        if x["seq"] > 10 and x["type"] == "intake" and x["org"] == world.maker.org.slug
    ]
    got, _ = list_all(auditor, "batch=no-such-batch")
    assert got == []


@pytest.mark.parametrize("query", ["type=bogus", "after=ten"])
def test_an_invalid_filter_value_is_a_problem(world: World, query: str) -> None:
    response = world.auditor.client.get(f"/api/v1/entries/?{query}")
    assert_problem(response, 400, "invalid-request")
