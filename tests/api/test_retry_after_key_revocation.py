"""DESIGN: an entry id seen before with the same content returns the same receipt, even
when the key that signed it has been revoked since (the content was valid when recorded)."""

from tests.conftest import World, new_batch_id


def test_retry_after_revocation_returns_the_original_receipt(world: World):
    r = world.recycler
    envelope = r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=700, origin="pre_consumer")
    )
    first = r.client.post("/api/v1/entries/", envelope, format="json")
    assert first.status_code == 201
    revoked = r.client.post(
        f"/api/v1/keys/{envelope['key_id']}/revoke/", {"reason": "rotated"}, format="json"
    )
    assert revoked.status_code == 200

    retry = r.client.post("/api/v1/entries/", envelope, format="json")

    assert retry.status_code == 200, retry.json()
    assert retry.json()["seq"] == first.json()["seq"]
    assert retry.json()["replayed"] is True


def test_a_new_entry_signed_with_the_revoked_key_is_still_refused(world: World):
    r = world.recycler
    key_id = r.sign(r.payload("intake"))["key_id"]
    r.client.post(f"/api/v1/keys/{key_id}/revoke/", {}, format="json")
    response = r.submit(
        "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=700, origin="pre_consumer"
    )
    assert response.status_code == 422
    assert response.json()["code"] == "key-revoked"
