"""Concurrent submitters on PostgreSQL: the log stays gapless and chained, every leaf
re-verifies, idempotency holds across racing retries, and racing consumers never overdraw.

16 threads, each with its own database connection and API client, go through the real HTTP
stack (Django test client) at the same time.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import rfc8785
from django.db import connection
from django.db.models import Sum
from rest_framework.test import APIClient

from accounts.models import SigningKey
from ledger.models import Batch, EntryBatch, LogRecord
from ledger.protocol.envelope import b64url_encode, make_envelope
from ledger.protocol.keys import generate_private_key, public_key_raw
from tests.api.support import ENTRIES, intake
from tests.conftest import Persona, World, need_service, new_batch_id

pytestmark = pytest.mark.postgres

THREADS = 16


def _client(persona: Persona) -> APIClient:
    # One client per thread: a test client keeps per-request state and is not thread-safe.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {persona.token}")
    return client


def run_threads(work: Callable[[int, threading.Barrier], Any]) -> list[Any]:
    """Run ``work(i, barrier)`` in THREADS threads; re-raise the first failure."""
    barrier = threading.Barrier(THREADS, timeout=60)
    results: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = work(i, barrier)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()  # each thread opened its own connection

    threads = [threading.Thread(target=target, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
        assert not thread.is_alive(), "a submitter thread hung"
    if errors:
        raise errors[0]
    return results


def assert_log_is_sound() -> list[LogRecord]:
    """Gapless seqs from 0, each prev the previous leaf, each leaf the hash of its bytes."""
    records = list(LogRecord.objects.order_by("seq"))
    assert [r.seq for r in records] == list(range(len(records)))
    prev = "0" * 64
    for record in records:
        assert record.prev == prev, record.seq
        parsed = json.loads(record.canonical)
        assert rfc8785.dumps(parsed) == record.canonical.encode("utf-8")
        assert parsed["seq"] == record.seq and parsed["prev"] == prev
        assert hashlib.sha256(b"\x00" + record.canonical.encode("utf-8")).hexdigest() == record.leaf_hash
        prev = record.leaf_hash
    ids = [r.entry_id for r in records]
    assert len(ids) == len(set(ids)), "an entry id was recorded twice"
    assert not Batch.objects.filter(remaining_g__lt=0).exists()
    return records


def test_concurrent_single_and_bulk_submissions_keep_the_log_gapless_and_chained(
    transactional_db: None, world: World
) -> None:
    need_service("PostgreSQL", connection.vendor == "postgresql")
    submitters = [world.recycler, world.processor, world.maker, world.outsider]
    start = LogRecord.objects.count()

    def work(i: int, barrier: threading.Barrier) -> dict[str, Any]:
        persona = submitters[i % len(submitters)]
        client = _client(persona)

        def envelope() -> dict[str, Any]:
            return persona.sign(
                persona.payload(
                    "intake",
                    batch=new_batch_id(f"t{i}"),
                    material="swarf",
                    mass_g=10 + i,
                    origin="pre_consumer",
                )
            )

        barrier.wait()
        seqs: list[int] = []
        first = envelope()
        for n in range(10):
            response = client.post(ENTRIES, first if n == 0 else envelope(), format="json")
            assert response.status_code == 201, response.content
            seqs.append(response.json()["seq"])
        for _ in range(2):
            response = client.post(ENTRIES, {"entries": [envelope() for _ in range(5)]}, format="json")
            assert response.status_code == 201, response.content
            batch_seqs = [x["seq"] for x in response.json()["receipts"]]
            # A bulk is appended as one run, uninterrupted by other submitters.
            assert batch_seqs == list(range(batch_seqs[0], batch_seqs[0] + 5))
            seqs += batch_seqs
        retry = client.post(ENTRIES, first, format="json")
        assert retry.status_code == 200 and retry.json()["seq"] == seqs[0]
        return {"seqs": seqs}

    results = run_threads(work)

    records = assert_log_is_sound()
    assert len(records) == start + THREADS * 20
    all_seqs = [s for r in results for s in r["seqs"]]
    assert sorted(all_seqs) == list(range(start, start + THREADS * 20))
    assert Counter(r.entry_type for r in records[start:]) == {"intake": THREADS * 20}


def test_racing_consumers_of_one_batch_never_overdraw(transactional_db: None, world: World) -> None:
    need_service("PostgreSQL", connection.vendor == "postgresql")
    r = world.recycler
    batch = intake(r, 1_000)
    start = LogRecord.objects.count()

    def work(i: int, barrier: threading.Barrier) -> int:
        client = _client(r)
        if i % 2:
            payload = r.payload("write_off", batch=batch, mass_g=100, reason="sample")
        else:
            payload = r.payload(
                "transform",
                process="split",
                inputs=[{"batch": batch, "mass_g": 100}],
                outputs=[{"batch": new_batch_id(f"race{i}"), "material": "magnet_scrap", "mass_g": 100}],
            )
        envelope = r.sign(payload)
        barrier.wait()
        response = client.post(ENTRIES, envelope, format="json")
        if response.status_code == 409:
            assert response.json()["code"] == "overdraw"
        return int(response.status_code)

    statuses = run_threads(work)

    assert Counter(statuses) == {201: 10, 409: 6}
    assert_log_is_sound()
    assert LogRecord.objects.count() == start + 10
    state = Batch.objects.get(id=batch)
    assert (state.remaining_g, state.status) == (0, "depleted")
    taken = EntryBatch.objects.filter(batch_id=batch, role__in=["input", "subject"]).aggregate(
        g=Sum("mass_g")
    )["g"]
    assert taken == 1_000


def test_racing_retries_of_one_entry_record_it_once(transactional_db: None, world: World) -> None:
    need_service("PostgreSQL", connection.vendor == "postgresql")
    r = world.recycler
    envelope = r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=5, origin="pre_consumer")
    )
    start = LogRecord.objects.count()

    def work(i: int, barrier: threading.Barrier) -> tuple[int, int, str]:
        client = _client(r)
        barrier.wait()
        response = client.post(ENTRIES, envelope, format="json")
        body = response.json()
        return response.status_code, body["seq"], body["leaf_hash"]

    results = run_threads(work)

    assert Counter(status for status, _, _ in results) == {201: 1, 200: THREADS - 1}
    assert len({(seq, leaf) for _, seq, leaf in results}) == 1
    assert LogRecord.objects.count() == start + 1
    assert_log_is_sound()


def test_racing_transfers_of_one_batch_admit_one_receipt(transactional_db: None, world: World) -> None:
    """Several recipients race to ship on a batch just received: exactly one ship wins."""
    need_service("PostgreSQL", connection.vendor == "postgresql")
    r, p, m = world.recycler, world.processor, world.maker
    batch = intake(r, 1_000)

    def work(i: int, barrier: threading.Barrier) -> int:
        client = _client(r)
        target = p if i % 2 else m
        envelope = r.sign(r.payload("ship", batch=batch, mass_g=1_000, to_org=target.org.slug))
        barrier.wait()
        return int(client.post(ENTRIES, envelope, format="json").status_code)

    statuses = run_threads(work)

    assert Counter(statuses) == {201: 1, 409: THREADS - 1}
    assert Batch.objects.get(id=batch).status == "in_transit"
    assert_log_is_sound()


def test_no_entry_signed_with_a_key_lands_after_its_revocation(transactional_db: None, world: World) -> None:
    """Submissions race a revocation of their key: every accepted entry precedes the
    key_revoked record in the log, every later one is refused as key-revoked."""
    need_service("PostgreSQL", connection.vendor == "postgresql")
    r = world.recycler
    private = generate_private_key()
    response = r.client.post(
        "/api/v1/keys/", {"public_key": b64url_encode(public_key_raw(private))}, format="json"
    )
    assert response.status_code == 201
    key_id = response.json()["key_id"]

    def work(i: int, barrier: threading.Barrier) -> list[int]:
        client = _client(r)
        barrier.wait()
        if i == 0:
            # Revoke mid-stream: once the first entry under the key has landed.
            deadline = time.monotonic() + 30
            while not LogRecord.objects.filter(key_id=key_id).exists():
                assert time.monotonic() < deadline, "no entry under the key was ever recorded"
                time.sleep(0.005)
            revoked = client.post(f"/api/v1/keys/{key_id}/revoke/", {"reason": "rotation"}, format="json")
            assert revoked.status_code == 200, revoked.content
            return []
        statuses = []
        for _ in range(15):
            payload = r.payload(
                "intake", batch=new_batch_id(f"k{i}"), material="swarf", mass_g=1, origin="pre_consumer"
            )
            response = client.post(ENTRIES, make_envelope(private, payload), format="json")
            if response.status_code != 201:
                assert response.json()["code"] == "key-revoked", response.content
            statuses.append(int(response.status_code))
        return statuses

    results = run_threads(work)

    assert_log_is_sound()
    revoked_seq = SigningKey.objects.get(key_id=key_id).revoked_seq
    assert revoked_seq is not None
    signed = list(LogRecord.objects.filter(key_id=key_id).values_list("seq", flat=True))
    assert signed and max(signed) < revoked_seq
    statuses = Counter(s for r in results for s in r)
    assert statuses[201] == len(signed)
    assert statuses[201] + statuses[422] == (THREADS - 1) * 15
