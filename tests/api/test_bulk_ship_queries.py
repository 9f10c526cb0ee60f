"""A bulk of ships to a named facility costs the same number of queries for 2 or 10 entries."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import World, new_batch_id


def _ship_bulk_queries(world: World, n: int) -> int:
    r, p = world.recycler, world.processor
    batches = [new_batch_id("evtb-q") for _ in range(n)]
    intakes = [
        r.sign(r.payload("intake", batch=b, material="swarf", mass_g=10, origin="pre_consumer"))
        for b in batches
    ]
    assert r.client.post("/api/v1/entries/", {"entries": intakes}, format="json").status_code == 201
    ships = [
        r.sign(r.payload("ship", batch=b, mass_g=10, to_org=p.org.slug, to_facility=p.facility.code))
        for b in batches
    ]
    with CaptureQueriesContext(connection) as ctx:
        assert r.client.post("/api/v1/entries/", {"entries": ships}, format="json").status_code == 201
    return len(ctx.captured_queries)


def test_bulk_ship_query_count_does_not_grow_with_the_bulk(world: World):
    assert _ship_bulk_queries(world, 10) == _ship_bulk_queries(world, 2)
