"""The ledger's wire protocol: canonical bytes, hashing, signing, verification.

Pure Python with no Django import, so the service, the ``magledger`` client and the
offline verifier share one implementation. The formats are fixed by DESIGN.md ("The log").
"""

from ledger.protocol.canonical import ProtocolError, canonical_bytes
from ledger.protocol.envelope import make_envelope, record_bytes, verify_envelope
from ledger.protocol.hashing import leaf_hash, node_hash
from ledger.protocol.keys import (
    KeyRejected,
    generate_private_key,
    key_id,
    load_private_key_file,
    public_key_from_bytes,
    write_private_key_file,
)

__all__ = [
    "KeyRejected",
    "ProtocolError",
    "canonical_bytes",
    "generate_private_key",
    "key_id",
    "leaf_hash",
    "load_private_key_file",
    "make_envelope",
    "node_hash",
    "public_key_from_bytes",
    "record_bytes",
    "verify_envelope",
    "write_private_key_file",
]
