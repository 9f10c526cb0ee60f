"""An entry is accepted only under a valid signature by a key of the submitting organisation
that is valid now."""

from __future__ import annotations

import copy

from accounts.models import SigningKey
from ledger.protocol.envelope import make_envelope
from ledger.protocol.keys import generate_private_key
from tests.api.support import assert_problem, batch_of, intake, nothing_written, post
from tests.conftest import World, new_batch_id


def _intake_envelope(world: World) -> dict:
    r = world.recycler
    return r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1_000, origin="pre_consumer")
    )


def test_a_payload_altered_after_signing_is_refused(world: World) -> None:
    r = world.recycler
    envelope = _intake_envelope(world)
    tampered = copy.deepcopy(envelope)
    tampered["payload"]["mass_g"] = 10_000
    with nothing_written():
        assert_problem(post(r, tampered), 422, "bad-signature", "/signature")
    assert post(r, envelope).status_code == 201


def test_a_signature_over_other_bytes_is_refused(world: World) -> None:
    r = world.recycler
    envelope = _intake_envelope(world)
    other = _intake_envelope(world)
    envelope["signature"] = other["signature"]
    with nothing_written():
        assert_problem(post(r, envelope), 422, "bad-signature", "/signature")


def test_a_signature_by_another_organisations_key_is_refused(world: World) -> None:
    r, p = world.recycler, world.processor
    payload = r.payload(
        "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1, origin="pre_consumer"
    )
    signed_by_processor = p.sign(payload)  # key_id names the processor's registered key
    with nothing_written():
        assert_problem(post(r, signed_by_processor), 422, "unknown-key", "/key_id")
    # Own key_id, but the bytes signed with another organisation's key.
    mixed = dict(signed_by_processor, key_id=r.sign(payload)["key_id"])
    with nothing_written():
        assert_problem(post(r, mixed), 422, "bad-signature", "/signature")


def test_an_unregistered_key_is_refused(world: World) -> None:
    r = world.recycler
    payload = r.payload(
        "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1, origin="pre_consumer"
    )
    envelope = make_envelope(generate_private_key(), payload)
    with nothing_written():
        assert_problem(post(r, envelope), 422, "unknown-key", "/key_id")


def test_a_revoked_key_is_refused_from_revocation_on(world: World) -> None:
    r = world.recycler
    batch = intake(r, 1_000)
    key_id = r.sign(r.payload("intake"))["key_id"]
    signed_before = r.sign(r.payload("write_off", batch=batch, mass_g=1, reason="sample"))

    response = r.client.post(f"/api/v1/keys/{key_id}/revoke/", {"reason": "laptop stolen"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["valid"] is False
    revoked = SigningKey.objects.get(key_id=key_id)
    assert revoked.revoked_seq is not None

    with nothing_written():
        assert_problem(post(r, signed_before), 422, "key-revoked", "/key_id")
        response = r.submit("write_off", batch=batch, mass_g=1, reason="sample")
        assert_problem(response, 422, "key-revoked", "/key_id")
    assert batch_of(r, batch)["remaining_g"] == 1_000


def test_only_the_owner_can_revoke_a_key(world: World) -> None:
    r, outsider = world.recycler, world.outsider
    key_id = r.sign(r.payload("intake"))["key_id"]
    with nothing_written():
        response = outsider.client.post(f"/api/v1/keys/{key_id}/revoke/", {}, format="json")
        assert_problem(response, 404, "not-found")
    assert SigningKey.objects.get(key_id=key_id).revoked_seq is None
