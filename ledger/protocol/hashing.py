"""RFC 9162 section 2.1 hashing: domain-separated leaf and interior node hashes."""

from __future__ import annotations

import hashlib

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
ZERO_HASH_HEX = "0" * 64


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the Merkle leaf hash of one record's canonical bytes."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior Merkle node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256, the digest form used for key ids and document commitments."""
    return hashlib.sha256(data).hexdigest()
