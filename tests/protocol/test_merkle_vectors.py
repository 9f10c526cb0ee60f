"""RFC 9162 Merkle trees against the shared vectors (../shared/vectors/merkle) and cross-checks.

Pure protocol tests: no Django, no database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from ledger.protocol.hashing import leaf_hash, node_hash
from ledger.protocol.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    ProofError,
    consistency_proof,
    consistency_proof_from_store,
    hash_from_hex,
    inclusion_proof,
    inclusion_proof_from_store,
    nodes_for_consistency,
    nodes_for_inclusion,
    nodes_for_root,
    perfect_nodes_for_append,
    root_from_inclusion_proof,
    root_from_leaves,
    root_from_store,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "merkle"
TD = VECTORS / "transparency-dev"
INCLUSION_FILES = sorted((TD / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((TD / "consistency").rglob("*.json"))
REFERENCE = json.loads((VECTORS / "rfc6962_reference_tree.json").read_text())


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _id(path: Path) -> str:
    return str(path.relative_to(TD))


def _reference_mth(leaves: list[bytes]) -> bytes:
    """Independent MTH (slicing recursion) used only by these tests."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(_reference_mth(leaves[:k]), _reference_mth(leaves[k:]))


# --- transparency-dev probes ------------------------------------------------------------------


def test_all_probe_files_present() -> None:
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_id)
def test_transparency_dev_inclusion_probe(path: Path) -> None:
    probe = _load(path)
    proof = [_b64(h) for h in probe["proof"] or []]
    args = (_b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"], proof, _b64(probe["root"]))
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_id)
def test_transparency_dev_consistency_probe(path: Path) -> None:
    probe = _load(path)
    proof = [_b64(h) for h in probe["proof"] or []]
    args = (probe["size1"], probe["size2"], _b64(probe["root1"]), _b64(probe["root2"]), proof)
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


# --- RFC 6962 reference tree (transcribed from transparency-dev) ------------------------------

REF_LEAVES = [leaf_hash(bytes.fromhex(h)) for h in REFERENCE["leaf_inputs_hex"]]


def _ref_store() -> dict[tuple[int, int], bytes]:
    store: dict[tuple[int, int], bytes] = {}
    cr = CompactRange()
    for h in REF_LEAVES:
        for node in cr.append(h):
            store[(node.level, node.index)] = node.hash
    return store


def test_reference_roots() -> None:
    assert EMPTY_ROOT.hex() == REFERENCE["empty_tree_root"]
    for size_text, root_hex in REFERENCE["root_hash_by_tree_size"].items():
        size = int(size_text)
        assert root_from_leaves(REF_LEAVES[:size]).hex() == root_hex
        assert CompactRange.from_leaves(REF_LEAVES[:size]).root().hex() == root_hex
        assert root_from_store(lambda lv, ix: _ref_store()[(lv, ix)], size).hex() == root_hex


def test_reference_node_hashes() -> None:
    store = _ref_store()
    expected = {
        (level, index): h
        for level, row in enumerate(REFERENCE["node_hashes_by_level"])
        for index, h in enumerate(row)
    }
    assert {k: v.hex() for k, v in store.items()} == expected


@pytest.mark.parametrize("vector", REFERENCE["hasher_unit_vectors"], ids=lambda v: v["desc"])
def test_hasher_unit_vectors(vector: dict[str, str]) -> None:
    if "left_ascii" in vector:
        got = node_hash(vector["left_ascii"].encode(), vector["right_ascii"].encode())
    elif "input_hex" in vector:
        got = leaf_hash(bytes.fromhex(vector["input_hex"]))
    elif "input_ascii" in vector:
        got = leaf_hash(vector["input_ascii"].encode())
    else:
        got = root_from_leaves([])
    assert got.hex() == vector["want"]


@pytest.mark.parametrize("vector", REFERENCE["inclusion_proofs"], ids=lambda v: str(v["leaf_index"]))
def test_reference_inclusion_proofs(vector: dict[str, Any]) -> None:
    store = _ref_store()
    index, size = vector["leaf_index"], vector["tree_size"]
    want = [bytes.fromhex(h) for h in vector["proof"]]
    assert inclusion_proof(REF_LEAVES, index, size) == want
    assert inclusion_proof_from_store(lambda lv, ix: store[(lv, ix)], index, size) == want
    assert REF_LEAVES[index].hex() == vector["leaf_hash"]
    verify_inclusion(REF_LEAVES[index], index, size, want, hash_from_hex(vector["root"]))


@pytest.mark.parametrize(
    "vector", REFERENCE["consistency_proofs"], ids=lambda v: f"{v['size1']}-{v['size2']}"
)
def test_reference_consistency_proofs(vector: dict[str, Any]) -> None:
    store = _ref_store()
    first, second = vector["size1"], vector["size2"]
    want = [bytes.fromhex(h) for h in vector["proof"]]
    assert consistency_proof(REF_LEAVES, first, second) == want
    assert consistency_proof_from_store(lambda lv, ix: store[(lv, ix)], first, second) == want
    verify_consistency(
        first, second, hash_from_hex(vector["root1"]), hash_from_hex(vector["root2"]), want
    )


def test_rfc6962_worked_example() -> None:
    """RFC 6962 section 2.1.3 example tree of 7 leaves (ledger.md 1.2/1.3)."""
    d = REF_LEAVES[:7]
    a, b, c, dd, e, f, j = d
    g, h, i = node_hash(a, b), node_hash(c, dd), node_hash(e, f)
    k, ll = node_hash(g, h), node_hash(i, j)
    assert inclusion_proof(d, 0, 7) == [b, h, ll]
    assert inclusion_proof(d, 3, 7) == [c, g, ll]
    assert inclusion_proof(d, 4, 7) == [f, j, k]
    assert inclusion_proof(d, 6, 7) == [i, k]
    assert consistency_proof(d, 3, 7) == [c, dd, g, ll]
    assert consistency_proof(d, 4, 7) == [ll]
    assert consistency_proof(d, 6, 7) == [i, j, k]


# --- randomized cross-checks ------------------------------------------------------------------

MAX_SIZE = 70


class CountingStore:
    """A node store that records lookups and refuses nodes not complete at ``size``."""

    def __init__(self, nodes: dict[tuple[int, int], bytes], size: int) -> None:
        self.nodes = nodes
        self.size = size
        self.asked: list[NodeId] = []

    def __call__(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, f"node {(level, index)} incomplete at {self.size}"
        self.asked.append(NodeId(level, index))
        return self.nodes[(level, index)]


@pytest.fixture(scope="module")
def random_tree() -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    rng = random.Random(9162)
    leaves = [leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(MAX_SIZE)]
    nodes: dict[tuple[int, int], bytes] = {}
    cr = CompactRange()
    for size, h in enumerate(leaves):
        appended = cr.append(h)
        assert appended == perfect_nodes_for_append(size, h, lambda lv, ix: nodes[(lv, ix)])
        for node in appended:
            assert (node.level, node.index) not in nodes
            nodes[(node.level, node.index)] = node.hash
    assert len(nodes) == 2 * MAX_SIZE - MAX_SIZE.bit_count()
    return leaves, nodes


def _flip(proof: list[bytes], rng: random.Random) -> list[bytes]:
    i = rng.randrange(len(proof))
    bad = bytearray(proof[i])
    bad[rng.randrange(32)] ^= 1 << rng.randrange(8)
    return [*proof[:i], bytes(bad), *proof[i + 1 :]]


def test_inclusion_store_matches_list_and_verifies(
    random_tree: tuple[list[bytes], dict[tuple[int, int], bytes]],
) -> None:
    leaves, nodes = random_tree
    rng = random.Random(1)
    checked = 0
    for size in range(1, MAX_SIZE + 1):
        root = root_from_leaves(leaves[:size])
        assert root == _reference_mth(leaves[:size])
        for index in range(size):
            store = CountingStore(nodes, size)
            proof = inclusion_proof_from_store(store, index, size)
            assert proof == inclusion_proof(leaves, index, size)
            assert store.asked == nodes_for_inclusion(index, size)
            assert len(store.asked) <= 2 * size.bit_length()
            verify_inclusion(leaves[index], index, size, proof, root)
            assert root_from_inclusion_proof(leaves[index], index, size, proof) == root
            if proof:
                with pytest.raises(ProofError):
                    verify_inclusion(leaves[index], index, size, _flip(proof, rng), root)
                with pytest.raises(ProofError):
                    verify_inclusion(leaves[index], index, size, proof[:-1], root)
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], index, size, [*proof, root], root)
            other = (index + 1) % size
            if leaves[other] != leaves[index]:
                with pytest.raises(ProofError):
                    verify_inclusion(leaves[other], index, size, proof, root)
            checked += 1
    assert checked == MAX_SIZE * (MAX_SIZE + 1) // 2


def test_consistency_store_matches_list_and_verifies(
    random_tree: tuple[list[bytes], dict[tuple[int, int], bytes]],
) -> None:
    leaves, nodes = random_tree
    rng = random.Random(2)
    roots = [root_from_leaves(leaves[:n]) for n in range(MAX_SIZE + 1)]
    checked = 0
    for second in range(1, MAX_SIZE + 1):
        for first in range(1, second + 1):
            store = CountingStore(nodes, second)
            proof = consistency_proof_from_store(store, first, second)
            assert proof == consistency_proof(leaves, first, second)
            assert store.asked == nodes_for_consistency(first, second)
            assert len(store.asked) <= 2 * second.bit_length()
            verify_consistency(first, second, roots[first], roots[second], proof)
            if proof:
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[first], roots[second], _flip(proof, rng))
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[first], roots[second], proof[1:])
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[second], roots[first], proof)
            if first > 1:
                with pytest.raises(ProofError):
                    verify_consistency(first - 1, second, roots[first], roots[second], proof)
            checked += 1
    assert checked == MAX_SIZE * (MAX_SIZE + 1) // 2


def test_compact_range_roots_sizes_0_to_300() -> None:
    rng = random.Random(300)
    leaves = [leaf_hash(rng.randbytes(8)) for _ in range(300)]
    nodes: dict[tuple[int, int], bytes] = {}
    cr = CompactRange()
    for size in range(301):
        assert cr.size == size
        assert cr.root() == root_from_leaves(leaves[:size]) == _reference_mth(leaves[:size])
        assert len(cr.to_list()) == size.bit_count()
        restored = CompactRange.from_list(size, cr.to_list())
        assert restored == cr and restored.root() == cr.root()
        assert CompactRange.from_store(lambda lv, ix: nodes[(lv, ix)], size) == cr
        assert root_from_store(lambda lv, ix: nodes[(lv, ix)], size) == cr.root()
        assert len(nodes_for_root(size)) == size.bit_count()
        if size < 300:
            for node in cr.append(leaves[size]):
                nodes[(node.level, node.index)] = node.hash


def test_compact_range_resume_after_persistence() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(37)]
    cr = CompactRange.from_leaves(leaves[:20])
    resumed = CompactRange.from_list(20, cr.to_list())
    resumed.extend(leaves[20:])
    assert resumed.root() == root_from_leaves(leaves)


def test_compact_range_from_list_rejects_garbage() -> None:
    good = CompactRange.from_leaves([leaf_hash(b"x")] * 3).to_list()
    with pytest.raises(ProofError):
        CompactRange.from_list(4, good)  # popcount(4) == 1
    with pytest.raises(ProofError):
        CompactRange.from_list(3, [good[0], good[1].upper()])
    with pytest.raises(ProofError):
        CompactRange.from_list(3, [good[0], good[1][:-2]])
    with pytest.raises(ProofError):
        CompactRange().append(b"short")


# --- explicit edge cases ----------------------------------------------------------------------


def test_generation_edge_cases() -> None:
    leaves = REF_LEAVES
    with pytest.raises(ProofError):
        inclusion_proof(leaves, 3, 3)
    with pytest.raises(ProofError):
        inclusion_proof(leaves, 0, 9)  # more than the leaves available
    with pytest.raises(ProofError):
        inclusion_proof_from_store(lambda lv, ix: b"", -1, 3)
    with pytest.raises(ProofError):
        consistency_proof(leaves, 0, 4)  # from the empty tree: meaningless
    with pytest.raises(ProofError):
        consistency_proof(leaves, 5, 4)
    assert consistency_proof(leaves, 4, 4) == []
    assert consistency_proof_from_store(lambda lv, ix: b"", 4, 4) == []
    assert inclusion_proof(leaves, 0, 1) == []


def test_verification_edge_cases() -> None:
    r1, r8 = root_from_leaves(REF_LEAVES[:1]), root_from_leaves(REF_LEAVES)
    with pytest.raises(ProofError, match="meaningless"):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="meaningless"):
        verify_consistency(0, 8, EMPTY_ROOT, r8, [])
    verify_consistency(8, 8, r8, r8, [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(8, 8, r8, r8, [r8])
    with pytest.raises(ProofError, match="roots differ"):
        verify_consistency(8, 8, r8, r1, [])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(1, 8, r1, r8, [])
    with pytest.raises(ProofError, match="smaller"):
        verify_consistency(8, 1, r8, r1, [])
    with pytest.raises(ProofError, match="not below"):
        verify_inclusion(REF_LEAVES[0], 8, 8, [], r8)
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(REF_LEAVES[0], 0, 1, [], r1[:31])
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(REF_LEAVES[0], 0, 2, [b"\x00" * 33], r8)
    with pytest.raises(ProofError) as info:
        verify_inclusion(REF_LEAVES[0], 0, 8, [], r8)
    assert info.value.code == "invalid-proof"
    with pytest.raises(ProofError):
        hash_from_hex("00" * 31)
