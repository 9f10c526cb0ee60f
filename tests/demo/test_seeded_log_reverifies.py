"""The seeded log re-verifies from its stored bytes: leaf hashes, chain links, signatures."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from accounts.models import SigningKey
from ledger.logkey import log_key_id, log_public_key_raw
from ledger.models import LogRecord
from ledger.protocol.canonical import canonical_bytes
from ledger.protocol.envelope import b64url_decode
from tests.demo.conftest import run

SERVICE_TYPES = {"key_registered", "key_revoked"}


@pytest.mark.django_db
def test_every_seeded_record_hashes_chains_and_verifies_under_its_signer_key() -> None:
    run("seed_demo")
    log_key = Ed25519PublicKey.from_public_bytes(log_public_key_raw())
    keys = {k.key_id: k for k in SigningKey.objects.select_related("organisation")}
    prev = "0" * 64
    records = list(LogRecord.objects.order_by("seq"))
    assert len(records) > 20

    for expected_seq, row in enumerate(records):
        data = row.canonical.encode("utf-8")
        leaf = hashlib.sha256(b"\x00" + data).hexdigest()
        record = json.loads(data)
        assert set(record) == {"seq", "recorded_at", "prev", "envelope"}
        assert canonical_bytes(record) == data, row.seq  # stored bytes are JCS
        assert record["seq"] == row.seq == expected_seq
        assert leaf == row.leaf_hash, row.seq
        assert record["prev"] == row.prev == prev, row.seq

        envelope = record["envelope"]
        payload = envelope["payload"]
        if payload["type"] in SERVICE_TYPES:
            assert envelope["key_id"] == log_key_id()
            public = log_key
        else:
            signer = keys[envelope["key_id"]]
            assert signer.organisation.slug == payload["org"]
            assert signer.registered_seq < row.seq  # registered before its first use
            public = Ed25519PublicKey.from_public_bytes(b64url_decode(signer.public_key))
        try:
            public.verify(b64url_decode(envelope["signature"]), canonical_bytes(payload))
        except InvalidSignature:
            pytest.fail(f"record {row.seq} ({payload['type']}) does not verify")
        prev = leaf


@pytest.mark.django_db
def test_key_registration_records_carry_the_registered_public_keys() -> None:
    run("seed_demo")
    for key in SigningKey.objects.all():
        payload = LogRecord.objects.get(seq=key.registered_seq).payload
        assert payload["type"] == "key_registered"
        assert (payload["key_id"], payload["public_key"]) == (key.key_id, key.public_key)
