"""seed_demo --json: one JSON object on stdout, with a working token per persona."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from accounts.models import ApiToken, SigningKey
from ledger import demo
from ledger.protocol.keys import key_id, load_private_key_file, public_key_raw
from tests.demo.conftest import run, seed_json

REQUIRED = {"recycler", "processor", "magnet_maker", "oem", "auditor"}


def get(path: str, token: str) -> Any:
    return Client().get(path, HTTP_AUTHORIZATION=f"Token {token}")


@pytest.mark.django_db
def test_json_output_is_one_object_with_base_url_personas_and_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "8765")
    out, err = run("seed_demo", "--json")

    document = json.loads(out)  # fails if anything but the one object is on stdout
    assert document["base_url"] == "http://127.0.0.1:8765"
    assert REQUIRED <= set(document["personas"])
    assert document["batches"]["magnet_lot"] == demo.BATCHES["magnet_lot"]
    assert "Seeded the demo chain" in err


@pytest.mark.django_db
def test_every_persona_token_authenticates_and_sees_entries() -> None:
    document = seed_json()
    total = len(demo.ORGS) + len(demo.steps())
    for name, persona in document["personas"].items():
        response = get("/api/v1/entries/?limit=1000", persona["token"])
        assert response.status_code == 200, (name, response.content)
        results = response.json()["results"]
        assert results, name
        if name == "auditor":
            assert len(results) == total
        else:
            assert {r["org"] for r in results} >= {persona["org"]}, name
            assert len(results) < total, name


@pytest.mark.django_db
def test_persona_key_files_hold_the_registered_keys_of_their_organisations() -> None:
    document = seed_json()
    for persona in document["personas"].values():
        key = load_private_key_file(Path(persona["key_file"]))
        assert key_id(public_key_raw(key)) == persona["key_id"]
        registered = SigningKey.objects.get(key_id=persona["key_id"])
        assert registered.organisation.slug == persona["org"]
        assert registered.revoked_seq is None


@pytest.mark.django_db
def test_the_oem_sees_the_magnet_lot_and_its_pedigree_back_to_take_back() -> None:
    document = seed_json()
    token = document["personas"]["oem"]["token"]
    lot = document["batches"]["magnet_lot"]

    response = get(f"/api/v1/batches/{lot}/", token)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["custodian"] == document["personas"]["oem"]["org"]
    assert body["mass_g"] == demo.MAGNETS_G
    # Post-consumer Dy reached the magnets through the HPMS powder.
    assert 0.3 < body["origin"]["elements"]["Dy"]["post_consumer"] < 0.7
    upstream = get(f"/api/v1/entries/?batch={document['batches']['motors']}", token)
    assert upstream.status_code == 200
    assert [r["type"] for r in upstream.json()["results"]] == ["intake", "transform"]
    # The recycler holds no magnet lot and must not see it.
    recycler = get(f"/api/v1/batches/{lot}/", document["personas"]["recycler"]["token"])
    assert recycler.status_code == 404


@pytest.mark.django_db
def test_each_json_call_issues_fresh_tokens_and_earlier_ones_keep_working() -> None:
    first = seed_json()
    second = seed_json()
    for name in first["personas"]:
        assert first["personas"][name]["token"] != second["personas"][name]["token"]
        assert get("/api/v1/entries/", first["personas"][name]["token"]).status_code == 200
    assert ApiToken.objects.filter(name="demo").count() == 2 * len(first["personas"])
