"""Key registration: a sound Ed25519 key is registered and logged; small-order, non-canonical
and malformed keys are refused (anyone could forge signatures under a small-order key)."""

from __future__ import annotations

import pytest

from accounts.models import SigningKey
from ledger.models import LogRecord
from ledger.protocol.envelope import b64url_encode, make_envelope
from ledger.protocol.keys import generate_private_key, key_id, public_key_raw
from tests.api.support import assert_problem, nothing_written
from tests.conftest import World, new_batch_id

KEYS = "/api/v1/keys/"

# The eight small-order points of Ed25519 in their canonical encodings (the identity is
# y = 1: 0x01 followed by 31 zero bytes), and non-canonical encodings of such points.
SMALL_ORDER = {
    "identity": "01" + "00" * 31,
    "order 2 (y = -1)": "ec" + "ff" * 30 + "7f",
    "order 4 (32 zero bytes)": "00" * 32,
    "order 4 (x negative)": "00" * 31 + "80",
    "order 8 a": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "order 8 b": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "order 8 c": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "order 8 d": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "identity, x = 0 with sign bit": "01" + "00" * 30 + "80",
    "y = p (non-canonical 0)": "ed" + "ff" * 30 + "7f",
}


def test_a_sound_key_is_registered_and_logged(world: World) -> None:
    r = world.recycler
    raw = public_key_raw(generate_private_key())
    before = LogRecord.objects.count()
    response = r.client.post(KEYS, {"public_key": b64url_encode(raw), "label": "line 2"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key_id"] == key_id(raw)
    assert (body["org"], body["valid"], body["label"]) == (r.org.slug, True, "line 2")
    record = LogRecord.objects.get(seq=body["registered_seq"])
    assert record.seq == before
    assert record.entry_type == "key_registered"
    assert record.payload["key_id"] == key_id(raw) and record.payload["org"] == r.org.slug


@pytest.mark.parametrize("name", list(SMALL_ORDER))
def test_small_order_and_non_canonical_keys_are_rejected(world: World, name: str) -> None:
    r = world.recycler
    encoded = b64url_encode(bytes.fromhex(SMALL_ORDER[name]))
    with nothing_written():
        response = r.client.post(KEYS, {"public_key": encoded}, format="json")
        assert_problem(response, 422, "key-rejected", "/public_key")


@pytest.mark.parametrize(
    "public_key",
    [
        "not base64url!",
        b64url_encode(b"\x01" * 31),
        b64url_encode(b"\x01" * 33),
        b64url_encode(bytes.fromhex("02" + "00" * 31)),  # y = 2 is not on the curve
        "",
    ],
)
def test_malformed_keys_are_rejected(world: World, public_key: str) -> None:
    r = world.recycler
    with nothing_written():
        response = r.client.post(KEYS, {"public_key": public_key}, format="json")
        if public_key == "":
            assert_problem(response, 400, "invalid-request", "/public_key")
        else:
            assert_problem(response, 422, "key-rejected", "/public_key")


def test_a_key_is_registered_once(world: World) -> None:
    r, outsider = world.recycler, world.outsider
    raw = b64url_encode(public_key_raw(generate_private_key()))
    assert r.client.post(KEYS, {"public_key": raw}, format="json").status_code == 201
    with nothing_written():
        assert_problem(
            r.client.post(KEYS, {"public_key": raw}, format="json"), 409, "key-exists", "/public_key"
        )
        # Nor can another organisation claim it.
        response = outsider.client.post(KEYS, {"public_key": raw}, format="json")
        assert_problem(response, 409, "key-exists", "/public_key")


def test_a_newly_registered_key_signs_entries(world: World) -> None:
    r = world.recycler
    private = generate_private_key()
    r.client.post(KEYS, {"public_key": b64url_encode(public_key_raw(private))}, format="json")
    envelope = make_envelope(
        private,
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1, origin="pre_consumer"),
    )
    response = r.client.post("/api/v1/entries/", envelope, format="json")
    assert response.status_code == 201, response.content
    assert SigningKey.objects.filter(organisation=r.org).count() == 2
