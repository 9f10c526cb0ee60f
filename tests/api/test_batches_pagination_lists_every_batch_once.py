"""Cursor pagination of batches lists each batch exactly once, even where many batches share
a created_seq (the outputs of one transform) and a page boundary falls among them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.support import intake, transform
from tests.conftest import World, new_batch_id


@pytest.mark.parametrize("limit", [3, 7, 10])
def test_outputs_of_one_transform_are_each_listed_once_across_pages(world: World, limit: int) -> None:
    r = world.recycler
    source = intake(r, 40_000)
    outputs = [new_batch_id("evtb-part") for _ in range(40)]
    transform(r, [(source, 40_000)], [(b, 1_000) for b in outputs], process="split", material="magnet_scrap")

    seen: list[str] = []
    url: str | None = f"/api/v1/batches/?limit={limit}"
    while url:
        body: dict[str, Any] = r.client.get(url).json()
        seen += [x["id"] for x in body["results"]]
        url = body["next"] and (lambda u: f"{u.path}?{u.query}")(urlsplit(body["next"]))
    assert len(seen) == len(set(seen)) == 41
    assert set(seen) == {source, *outputs}
