"""The verifier's fast paths give the reference answers (pure Python, no database):
fast_canonical_bytes is RFC 8785, and InclusionChecker accepts and refuses exactly what
merkle.verify_inclusion does."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ledger.protocol.bundle import InclusionChecker, fast_canonical_bytes
from ledger.protocol.canonical import ProtocolError, canonical_bytes
from ledger.protocol.hashing import leaf_hash
from ledger.protocol.merkle import ProofError, inclusion_proof, root_from_leaves, verify_inclusion
from tests.conftest import VECTORS

JCS = VECTORS / "jcs"


@pytest.mark.parametrize("path", sorted((JCS / "input").glob("*.json")), ids=lambda p: p.name)
def test_fast_canonical_bytes_match_the_jcs_vectors(path: Path) -> None:
    value = json.loads(path.read_text(encoding="utf-8"))
    expected = (JCS / "output" / path.name).read_bytes().rstrip(b"\n")
    assert fast_canonical_bytes(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"mass_g": 1.0},
        {"x": 1e-7, "y": [0.5, 1e21]},
        {"\U0001f600": 1, "\ue000": 2},
        {"ctl": '\x00\x1f\x7f\u2028"\\/\b\f\n\r\t', "é": "ü"},
        [True, False, None, -(2**53) + 1, "", {}, []],
    ],
)
def test_fast_canonical_bytes_agree_with_rfc8785_where_the_c_encoder_differs(value: object) -> None:
    assert fast_canonical_bytes(value) == canonical_bytes(value)


def test_fast_canonical_bytes_refuse_what_jcs_refuses() -> None:
    for bad in ({"x": "\ud800"}, {"n": float("nan")}, {"big": 2**60}):
        with pytest.raises(ProtocolError):
            fast_canonical_bytes(bad)


def _agrees(checker: InclusionChecker, leaf: bytes, index: int, proof: list[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(leaf, index, checker.size, proof, root)
        reference = True
    except ProofError:
        reference = False
    try:
        checker.verify(leaf, index, [h.hex() for h in proof])
        fast = True
    except ProofError:
        fast = False
    return reference == fast


def test_the_inclusion_checker_agrees_with_verify_inclusion() -> None:
    rng = random.Random(9162)
    for size in [1, 2, 3, 5, 8, 13, 31, 32, 33, 100]:
        leaves = [leaf_hash(str(i).encode()) for i in range(size)]
        root = root_from_leaves(leaves)
        checker = InclusionChecker(size, root)
        for index in rng.sample(range(size), min(size, 20)) + list(range(size)):
            proof = inclusion_proof(leaves, index, size)
            assert _agrees(checker, leaves[index], index, proof, root)
            wrong_leaf = leaf_hash(b"forged")
            assert _agrees(checker, wrong_leaf, index, proof, root)
            if proof:
                bad = list(proof)
                bad[rng.randrange(len(bad))] = bytes(32)
                assert _agrees(checker, leaves[index], index, bad, root)
                assert _agrees(checker, leaves[index], index, proof[:-1], root)
            if size > 1:
                other = (index + 1) % size
                assert _agrees(checker, leaves[index], other, proof, root)
        with pytest.raises(ProofError):
            checker.verify(leaves[0], size, [])


def test_a_leaf_refuted_by_a_known_node_names_the_root_its_proof_leads_to() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(16)]
    root = root_from_leaves(leaves)
    checker = InclusionChecker(16, root)
    checker.verify(leaves[4], 4, [h.hex() for h in inclusion_proof(leaves, 4, 16)])
    with pytest.raises(ProofError, match="leads to root"):
        checker.verify(leaf_hash(b"x"), 5, [h.hex() for h in inclusion_proof(leaves, 5, 16)])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: [p[0].upper(), *p[1:]],
        lambda p: [p[0][:-2], p[1] + "00", *p[2:]],
        lambda p: [p[0] + "0", *p[1:]],
        lambda p: [None, *p[1:]],
    ],
)
def test_malformed_proof_hashes_are_refused_even_after_their_subtree_is_known(mangle: Any) -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(16)]
    checker = InclusionChecker(16, root_from_leaves(leaves))
    checker.verify(leaves[2], 2, [h.hex() for h in inclusion_proof(leaves, 2, 16)])
    proof = [h.hex() for h in inclusion_proof(leaves, 3, 16)]
    with pytest.raises(ProofError):
        checker.verify(leaves[3], 3, mangle(proof))
    checker.verify(leaves[3], 3, proof)
