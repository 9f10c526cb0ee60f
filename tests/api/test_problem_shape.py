"""The shape of a refusal: problem+json naming the rule, the field and (bulk only) the index."""

from tests.conftest import World, new_batch_id


def test_single_envelope_refusal_has_pointer_but_no_index(world: World):
    r = world.recycler
    response = r.submit("write_off", batch=new_batch_id("nope"), mass_g=5, reason="disposal")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "unknown-batch"
    assert body["type"] == "/problems/unknown-batch"
    assert body["errors"] == [{"pointer": "/payload/batch", "detail": body["detail"]}]
    assert "index" not in body


def test_bulk_refusal_names_the_envelope_index(world: World):
    r = world.recycler
    good = r.sign(
        r.payload("intake", batch=new_batch_id("ok"), material="swarf", mass_g=10, origin="pre_consumer")
    )
    bad = r.sign(r.payload("write_off", batch=new_batch_id("nope"), mass_g=5, reason="disposal"))
    response = r.client.post("/api/v1/entries/", {"entries": [good, bad]}, format="json")
    body = response.json()
    assert body["index"] == 1
    assert body["errors"][0]["pointer"] == "/entries/1/payload/batch"
