"""GET /api/v1/log/proof/inclusion/ and /consistency/: every proof for every size up to the
latest checkpoint verifies with ledger.protocol.merkle and equals the RFC's reference
proof; edge cases are problem+json; proofs cost a bounded number of queries."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from ledger import transparency
from ledger.models import Checkpoint
from ledger.protocol.merkle import (
    consistency_proof,
    inclusion_proof,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from ledger.protocol.note import verify_checkpoint
from tests.conftest import World, new_batch_id
from tests.transparency.support import stored_leaves

anonymous = APIClient()


def _grow(world: World, counts: tuple[int, ...]) -> list[int]:
    """Append bulks of intakes, publishing a checkpoint after each; the checkpoint sizes."""
    r = world.recycler
    sizes = []
    for count in counts:
        envelopes = [
            r.sign(
                r.payload(
                    "intake", batch=new_batch_id("evtb-p"), material="swarf", mass_g=5, origin="pre_consumer"
                )
            )
            for _ in range(count)
        ]
        assert r.client.post("/api/v1/entries/", {"entries": envelopes}, format="json").status_code == 201
        published = transparency.integrate_and_publish()
        assert published is not None
        sizes.append(published.checkpoint.size)
    return sizes


def _hashes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


@pytest.fixture
def log(world: World) -> tuple[list[bytes], list[int]]:
    sizes = _grow(world, (1, 2, 7, 1, 16, 4))  # 6 key records first: 7, 9, 16, 17, 33, 37
    return stored_leaves(), sizes


def test_every_inclusion_proof_verifies_and_equals_the_reference(log: tuple[list[bytes], list[int]]) -> None:
    leaves, sizes = log
    for size in range(1, len(leaves) + 1):
        root = root_from_leaves(leaves[:size])
        for index in range(size):
            body = anonymous.get(f"/api/v1/log/proof/inclusion/?index={index}&size={size}").json()
            proof = _hashes(body["proof"])
            assert proof == inclusion_proof(leaves, index, size)
            assert (body["index"], body["size"], body["leaf_hash"]) == (index, size, leaves[index].hex())
            assert body["root"] == root.hex()
            verify_inclusion(leaves[index], index, size, proof, root)
            assert (body["checkpoint"] is not None) == (size in sizes)


def test_every_consistency_proof_verifies_and_equals_the_reference(
    log: tuple[list[bytes], list[int]],
) -> None:
    leaves, sizes = log
    for second in range(1, len(leaves) + 1):
        second_root = root_from_leaves(leaves[:second])
        for first in range(1, second + 1):
            body = anonymous.get(f"/api/v1/log/proof/consistency/?first={first}&second={second}").json()
            proof = _hashes(body["proof"])
            assert proof == consistency_proof(leaves, first, second)
            first_root = root_from_leaves(leaves[:first])
            assert (body["first_root"], body["second_root"]) == (first_root.hex(), second_root.hex())
            verify_consistency(first, second, first_root, second_root, proof)
            assert (body["first_checkpoint"] is not None) == (first in sizes)


def test_sizes_default_to_the_latest_checkpoint_and_carry_its_note(
    log: tuple[list[bytes], list[int]], settings: Any
) -> None:
    leaves, sizes = log
    latest = Checkpoint.objects.get(size=sizes[-1])
    body = anonymous.get("/api/v1/log/proof/inclusion/?index=3").json()
    assert body["size"] == latest.size
    assert body["checkpoint"] == latest.note
    vkey = anonymous.get("/api/v1/log/").json()["vkey"]
    signed = verify_checkpoint(body["checkpoint"], [vkey], origin=settings.LEDGER_LOG_ORIGIN)
    verify_inclusion(leaves[3], 3, signed.size, _hashes(body["proof"]), signed.root)

    body = anonymous.get(f"/api/v1/log/proof/consistency/?first={sizes[0]}").json()
    assert (body["second"], body["second_checkpoint"]) == (latest.size, latest.note)


def test_equal_sizes_give_an_empty_consistency_proof(log: tuple[list[bytes], list[int]]) -> None:
    leaves, sizes = log
    body = anonymous.get(f"/api/v1/log/proof/consistency/?first={sizes[1]}&second={sizes[1]}").json()
    assert body["proof"] == []
    assert body["first_root"] == body["second_root"] == root_from_leaves(leaves[: sizes[1]]).hex()


def test_a_proof_beyond_the_latest_checkpoint_is_404_until_one_covers_it(world: World) -> None:
    sizes = _grow(world, (3,))
    world.recycler.submit_ok(
        "intake", batch=new_batch_id("evtb-late"), material="swarf", mass_g=1, origin="pre_consumer"
    )
    late = sizes[0]  # the seq of the entry just appended
    response = anonymous.get(f"/api/v1/log/proof/inclusion/?index={late}&size={late + 1}")
    assert response.status_code == 404
    assert response.json()["code"] == "not-checkpointed"
    assert f"covers {late} entries" in response.json()["detail"]
    assert anonymous.get(f"/api/v1/log/proof/inclusion/?index={late}").status_code == 400
    transparency.integrate_and_publish()
    assert anonymous.get(f"/api/v1/log/proof/inclusion/?index={late}").status_code == 200


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("inclusion/?index=9&size=9", 400, "index-out-of-range"),
        ("inclusion/?index=0&size=0", 400, "index-out-of-range"),
        ("inclusion/?index=0&size=10", 404, "not-checkpointed"),
        ("inclusion/?index=99", 400, "index-out-of-range"),
        ("inclusion/", 400, "invalid-request"),
        ("inclusion/?index=abc", 400, "invalid-request"),
        ("inclusion/?index=-1", 400, "invalid-request"),
        ("inclusion/?index=1.5", 400, "invalid-request"),
        ("inclusion/?index=1&size=%2B3", 400, "invalid-request"),
        ("inclusion/?index=1&size=99999999999999999999", 400, "invalid-request"),
        ("consistency/?first=0&second=5", 400, "empty-first-tree"),
        ("consistency/?first=0&second=0", 400, "empty-first-tree"),
        ("consistency/?first=6&second=5", 400, "sizes-reversed"),
        ("consistency/?first=1&second=10", 404, "not-checkpointed"),
        ("consistency/?second=5", 400, "invalid-request"),
        ("consistency/?first=x", 400, "invalid-request"),
    ],
)
def test_edge_cases_are_problems(world: World, query: str, status: int, code: str) -> None:
    _grow(world, (3,))  # 9 entries, one checkpoint of 9
    response = anonymous.get(f"/api/v1/log/proof/{query}")
    assert response.status_code == status, response.json()
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["detail"]


def test_before_any_checkpoint_proofs_are_404(world: World) -> None:
    for query in ("inclusion/?index=0", "consistency/?first=1"):
        response = anonymous.get(f"/api/v1/log/proof/{query}")
        assert response.status_code == 404
        assert response.json()["code"] == "no-checkpoint"


def test_a_proof_costs_a_bounded_number_of_queries(
    log: tuple[list[bytes], list[int]], django_assert_max_num_queries: Any
) -> None:
    leaves, _ = log
    # the latest checkpoint with the one of the size asked, then the tree's nodes
    with django_assert_max_num_queries(2):
        assert (
            anonymous.get(f"/api/v1/log/proof/inclusion/?index=5&size={len(leaves) - 2}").status_code == 200
        )
    with django_assert_max_num_queries(2):
        assert anonymous.get("/api/v1/log/proof/consistency/?first=3&second=30").status_code == 200
