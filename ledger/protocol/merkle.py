"""RFC 9162 section 2.1 Merkle trees: roots, compact ranges, proofs and their verification.

Every function here works on **leaf hashes** (``hashing.leaf_hash(record_bytes)``), never on
raw leaf data: the service stores leaf hashes, and the tree above them is the same.

Node addressing (the "node store" protocol)
-------------------------------------------
A *perfect node* ``(level, index)`` is the root of the perfect subtree of ``2**level``
leaves covering leaf indices ``[index * 2**level, (index + 1) * 2**level)``. Level 0 nodes are
the leaf hashes. Once all its leaves exist a perfect node never changes, so the service can
persist it (one row per node, ``2n - 1`` rows for ``n`` leaves) and serve any proof from
O(log n) of them. A ``GetNode`` is any callable ``get_node(level, index) -> bytes`` returning
that hash; the ``nodes_for_*`` functions list in advance which nodes a computation will ask
for, so a database-backed store can fetch them in one query and pass ``dict.__getitem__``.

Every non-perfect subtree that RFC 9162 needs, ``MTH(D[lo:hi])``, has ``lo`` aligned to a
power of two ``>= hi - lo``; it splits into one perfect node per set bit of ``hi - lo``
(largest first) and its hash is the right fold ``H(p0, H(p1, ... H(p_{j-1}, p_j)))``.

Verification edge cases follow transparency-dev/merkle ``proof/verify.go`` (and pass all its
probes in ``vectors/merkle/transparency-dev``): every hash must be exactly 32 bytes, the
proof length must be exactly what the sizes imply, ``index >= size`` is an error, a
consistency proof from size 0 is an error ("meaningless", even 0 -> 0), and equal sizes need
an empty proof and equal roots (compared byte for byte, whatever their length, as upstream).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.protocol.canonical import ProtocolError
from ledger.protocol.hashing import node_hash

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256(""), the root of the empty tree."""

GetNode = Callable[[int, int], bytes]
"""``get_node(level, index)``: the hash of perfect node ``(level, index)`` (see module doc)."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


class ProofError(ProtocolError):
    """A proof (or its inputs) that does not verify, or a proof request that is out of range."""

    def __init__(self, detail: str, code: str = "invalid-proof", pointer: str = "") -> None:
        super().__init__(code, detail, pointer)


@dataclass(frozen=True, slots=True)
class NodeId:
    """Address of a perfect node: ``2**level`` leaves starting at leaf ``index * 2**level``."""

    level: int
    index: int


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect node and its hash, as returned when a leaf append completes it."""

    level: int
    index: int
    hash: bytes


# ---------------------------------------------------------------------------------------------
# Small helpers


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n >= 2): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte SHA-256 hash, got {size} bytes.")


def _check_int(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}.")


def hash_from_hex(text: str, pointer: str = "") -> bytes:
    """Decode a hash written as exactly 64 lowercase hex digits; raise ProofError otherwise."""
    if not isinstance(text, str) or not _HEX64.fullmatch(text):
        raise ProofError("A hash must be 64 lowercase hex digits.", code="malformed-hash", pointer=pointer)
    return bytes.fromhex(text)


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """H(h0, H(h1, ... H(h_{j-1}, h_j))): the root of a left-aligned run of perfect nodes."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _range_nodes(lo: int, hi: int) -> list[NodeId]:
    """Perfect nodes (largest first) whose leaves are exactly ``[lo, hi)``.

    Requires ``lo`` aligned to the top bit of ``hi - lo`` (true for every RFC 9162 subtree).
    """
    out: list[NodeId] = []
    rest = hi - lo
    while rest:
        level = rest.bit_length() - 1
        out.append(NodeId(level, lo >> level))
        lo += 1 << level
        rest -= 1 << level
    return out


# ---------------------------------------------------------------------------------------------
# Roots


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes (RFC 9162 section 2.1.1); the empty list gives EMPTY_ROOT.

    ``leaves`` are leaf hashes (``leaf_hash(data)``), not raw data. Follows the RFC's
    recursive definition (depth log n, O(n) hashes), independently of CompactRange.
    """
    if not leaves:
        return EMPTY_ROOT
    return _mth(leaves, 0, len(leaves))


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) by the RFC's recursive definition (used for the reference proofs)."""
    n = hi - lo
    if n == 1:
        return leaves[lo]
    k = _largest_power_of_two_below(n)
    return node_hash(_mth(leaves, lo, lo + k), _mth(leaves, lo + k, hi))


def root_from_store(get_node: GetNode, size: int) -> bytes:
    """The root of the tree of ``size`` leaves from at most popcount(size) perfect nodes."""
    _check_int(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _fold_right([get_node(nid.level, nid.index) for nid in _range_nodes(0, size)])


def nodes_for_root(size: int) -> list[NodeId]:
    """The perfect nodes ``root_from_store(get_node, size)`` will ask for."""
    _check_int(size, "size")
    return _range_nodes(0, size)


# ---------------------------------------------------------------------------------------------
# Compact range (frontier)


class CompactRange:
    """The frontier of a growing tree: one perfect-subtree root per set bit of ``size``.

    ``hashes[0]`` is the largest (leftmost) subtree. ``append`` is O(1) amortised (it merges
    while the size's low bits are 1) and returns the perfect nodes the new leaf completed, so
    the service can persist them for proof generation. Persist ``size`` and ``to_list()``
    (hex strings) together and rebuild with ``from_list(size, hashes)``.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """An empty range (size 0)."""
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The frontier hashes, largest subtree first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; return the perfect nodes it completed, level 0 first.

        The first returned node is the leaf itself ``(0, old_size, leaf_hash)``; one more
        node is returned for every trailing 1 bit of the old size.
        """
        _check_hash(leaf_hash, "leaf hash")
        index = self._size
        h = bytes(leaf_hash)
        completed = [Node(0, index, h)]
        level = 0
        while (self._size >> level) & 1:
            h = node_hash(self._hashes.pop(), h)
            level += 1
            index >>= 1
            completed.append(Node(level, index, h))
        self._hashes.append(h)
        self._size += 1
        return completed

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Append several leaf hashes."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of the leaves appended so far (EMPTY_ROOT when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold_right(self._hashes)

    def to_list(self) -> list[str]:
        """The frontier as lowercase hex strings (largest subtree first), for storage."""
        return [h.hex() for h in self._hashes]

    @classmethod
    def from_list(cls, size: int, hashes: Sequence[str]) -> CompactRange:
        """Rebuild from ``size`` and ``to_list()`` output; raise ProofError if inconsistent."""
        _check_int(size, "size")
        if len(hashes) != size.bit_count():
            raise ProofError(
                f"A compact range of size {size} has {size.bit_count()} hashes, not {len(hashes)}.",
                code="malformed-compact-range",
            )
        cr = cls()
        cr._size = size
        cr._hashes = [hash_from_hex(h, pointer=f"/{i}") for i, h in enumerate(hashes)]
        return cr

    @classmethod
    def from_leaves(cls, leaves: Sequence[bytes]) -> CompactRange:
        """The compact range of a list of leaf hashes."""
        cr = cls()
        cr.extend(leaves)
        return cr

    @classmethod
    def from_store(cls, get_node: GetNode, size: int) -> CompactRange:
        """The compact range of the first ``size`` leaves, read from a node store."""
        _check_int(size, "size")
        cr = cls()
        cr._size = size
        cr._hashes = [get_node(nid.level, nid.index) for nid in _range_nodes(0, size)]
        return cr

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def perfect_nodes_for_append(size_before: int, leaf_hash: bytes, get_node: GetNode) -> list[Node]:
    """The perfect nodes that become complete when leaf ``size_before`` is appended.

    Returns ``(level, index, hash)`` from level 0 (the leaf itself) upward: for each trailing
    1 bit of ``size_before`` the new subtree merges with its left sibling, which is read with
    ``get_node`` (so it must already be stored). Persisting every returned node after every
    append keeps the store complete. Same result as ``CompactRange.append``, which needs no
    lookups; this variant is for callers that hold the store but not the frontier.
    """
    _check_int(size_before, "size_before")
    _check_hash(leaf_hash, "leaf hash")
    index = size_before
    h = bytes(leaf_hash)
    out = [Node(0, index, h)]
    level = 0
    while index & 1:
        h = node_hash(get_node(level, index - 1), h)
        level += 1
        index >>= 1
        out.append(Node(level, index, h))
    return out


# ---------------------------------------------------------------------------------------------
# Proof generation: reference versions over a list (RFC text, recursive)


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) over a list of leaf hashes (RFC 9162 section 2.1.3.1).

    Straightforward O(size) recursion; leaf-level sibling first. Raises ProofError unless
    ``0 <= index < size <= len(leaves)``.
    """
    _check_inclusion_request(index, size, len(leaves))

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return [*path(m, lo, lo + k), _mth(leaves, lo + k, hi)]
        return [*path(m - k, lo + k, hi), _mth(leaves, lo, lo + k)]

    return path(index, 0, size)


def consistency_proof(leaves: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) over a list of leaf hashes (RFC 9162 section 2.1.4.1).

    Straightforward recursion. ``first == second`` gives ``[]``. Raises ProofError unless
    ``0 < first <= second <= len(leaves)`` (a proof from the empty tree is meaningless).
    """
    _check_consistency_request(first, second, len(leaves))

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [_mth(leaves, lo, hi)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*subproof(m, lo, lo + k, complete), _mth(leaves, lo + k, hi)]
        return [*subproof(m - k, lo + k, hi, False), _mth(leaves, lo, lo + k)]

    return subproof(first, 0, second, True)


def _check_inclusion_request(index: int, size: int, available: int | None) -> None:
    _check_int(index, "index")
    _check_int(size, "size")
    if index >= size:
        raise ProofError(f"Leaf index {index} is not below tree size {size}.", "out-of-range")
    if available is not None and size > available:
        raise ProofError(f"Tree size {size} exceeds the {available} leaves.", "out-of-range")


def _check_consistency_request(first: int, second: int, available: int | None) -> None:
    _check_int(first, "first")
    _check_int(second, "second")
    if first == 0:
        raise ProofError("A consistency proof from the empty tree is meaningless.", "out-of-range")
    if first > second:
        raise ProofError(f"First size {first} exceeds second size {second}.", "out-of-range")
    if available is not None and second > available:
        raise ProofError(f"Tree size {second} exceeds the {available} leaves.", "out-of-range")


# ---------------------------------------------------------------------------------------------
# Proof generation from a node store: O(log n) lookups


def _inclusion_plan(index: int, size: int) -> list[list[NodeId]]:
    """For each proof element (leaf level first), the perfect nodes to fold into it.

    Walks the RFC recursion top-down. Only a right sibling at the tree's right border can be
    non-perfect, and after it the remaining subtree is perfect, so the plan holds
    O(log size) nodes in total.
    """
    plan: list[list[NodeId]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            plan.append(_range_nodes(lo + k, hi))
            hi = lo + k
        else:
            plan.append(_range_nodes(lo, lo + k))
            lo += k
    plan.reverse()
    return plan


def _consistency_plan(first: int, second: int) -> list[list[NodeId]]:
    """Like ``_inclusion_plan`` for PROOF(first, D[0:second]); requires 0 < first <= second."""
    plan: list[list[NodeId]] = []
    lo, hi, complete = 0, second, True
    while first - lo != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if first - lo <= k:
            plan.append(_range_nodes(lo + k, hi))
            hi = lo + k
        else:
            plan.append(_range_nodes(lo, lo + k))
            lo += k
            complete = False
    if not complete:
        plan.append(_range_nodes(lo, hi))
    plan.reverse()
    return plan


def _materialise(plan: list[list[NodeId]], get_node: GetNode) -> list[bytes]:
    return [_fold_right([get_node(nid.level, nid.index) for nid in element]) for element in plan]


def inclusion_proof_from_store(get_node: GetNode, index: int, size: int) -> list[bytes]:
    """The inclusion proof for leaf ``index`` in the tree of ``size`` leaves, from stored nodes.

    Asks ``get_node`` for O(log size) perfect nodes (exactly ``nodes_for_inclusion``); equals
    ``inclusion_proof(leaves, index, size)``. Raises ProofError unless ``0 <= index < size``.
    """
    _check_inclusion_request(index, size, None)
    return _materialise(_inclusion_plan(index, size), get_node)


def consistency_proof_from_store(get_node: GetNode, first: int, second: int) -> list[bytes]:
    """The consistency proof from size ``first`` to ``second``, from stored nodes.

    Asks ``get_node`` for O(log second) perfect nodes (exactly ``nodes_for_consistency``);
    equals ``consistency_proof(leaves, first, second)``. Raises ProofError unless
    ``0 < first <= second``.
    """
    _check_consistency_request(first, second, None)
    return _materialise(_consistency_plan(first, second), get_node)


def nodes_for_inclusion(index: int, size: int) -> list[NodeId]:
    """The perfect nodes ``inclusion_proof_from_store`` will ask for (to prefetch them)."""
    _check_inclusion_request(index, size, None)
    return [nid for element in _inclusion_plan(index, size) for nid in element]


def nodes_for_consistency(first: int, second: int) -> list[NodeId]:
    """The perfect nodes ``consistency_proof_from_store`` will ask for (to prefetch them)."""
    _check_consistency_request(first, second, None)
    return [nid for element in _consistency_plan(first, second) for nid in element]


# ---------------------------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2, transparency-dev hardening)


def _decomp_inclusion(index: int, size: int) -> tuple[int, int]:
    """(inner, border): proof elements below and on the right border for ``index`` in ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(h, seed) if (index >> i) & 1 else node_hash(seed, h)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        _check_hash(h, f"proof[{i}]")


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof; ProofError if its shape cannot be right.

    Checks ``index < size``, 32-byte hashes and the exact proof length
    ``inner + border`` (``inner = bitlen(index ^ (size-1))``,
    ``border = popcount(index >> inner)``).
    """
    _check_int(index, "index")
    _check_int(size, "size")
    if index >= size:
        raise ProofError(f"Leaf index {index} is not below tree size {size}.")
    _check_hash(leaf_hash, "leaf hash")
    _check_proof(proof)
    inner, border = _decomp_inclusion(index, size)
    if len(proof) != inner + border:
        raise ProofError(
            f"An inclusion proof for leaf {index} in a tree of {size} has {inner + border} "
            f"hashes, not {len(proof)}."
        )
    res = _chain_inner(bytes(leaf_hash), proof[:inner], index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Returns None on success and raises ProofError (code "invalid-proof") otherwise.
    """
    _check_hash(root, "root")
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if calculated != root:
        raise ProofError(
            f"The inclusion proof for leaf {index} leads to root {calculated.hex()}, not {bytes(root).hex()}."
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``second`` leaves extends the tree of ``first`` leaves.

    Returns None on success, raises ProofError otherwise. Edge cases (transparency-dev):
    ``second < first`` fails; ``first == 0`` fails (a proof from the empty tree is
    meaningless, even 0 -> 0); ``first == second`` needs an empty proof and equal roots
    (compared as given: like transparency-dev, their length is not checked in this case);
    otherwise the proof must be non-empty and of exactly the implied length, and both roots
    and every proof hash must be 32 bytes.
    """
    _check_int(first, "first")
    _check_int(second, "second")
    _check_proof(proof)
    if second < first:
        raise ProofError(f"Second size {second} is smaller than first size {first}.")
    if first == 0:
        raise ProofError("A consistency proof from the empty tree is meaningless.")
    if first == second:
        if proof:
            raise ProofError("Sizes are equal, so the consistency proof must be empty.")
        if first_root != second_root:
            raise ProofError(f"Sizes are equal ({first}) but the roots differ.")
        return
    if not proof:
        raise ProofError("The consistency proof is empty.")
    _check_hash(first_root, "first root")
    _check_hash(second_root, "second root")

    inner, border = _decomp_inclusion(first - 1, second)
    shift = (first & -first).bit_length() - 1  # trailing zeros of first
    inner -= shift
    # The proof starts with the root of the size-2**shift subtree ending at first - 1,
    # unless first is that very power of two, in which case it is first_root itself.
    if first == 1 << shift:
        seed, rest = bytes(first_root), proof
    else:
        seed, rest = proof[0], proof[1:]
    expected = len(proof) - len(rest) + inner + border
    if len(proof) != expected:
        raise ProofError(
            f"A consistency proof from {first} to {second} has {expected} hashes, not {len(proof)}."
        )
    mask = (first - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if hash1 != first_root:
        raise ProofError(
            f"The consistency proof leads to first root {hash1.hex()}, not {bytes(first_root).hex()}."
        )
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if hash2 != second_root:
        raise ProofError(
            f"The consistency proof leads to second root {hash2.hex()}, not {bytes(second_root).hex()}."
        )
