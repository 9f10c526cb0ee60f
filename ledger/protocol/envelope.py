"""Envelopes (what a client signs and submits) and records (what the log appends).

Envelope: ``{"payload": {...}, "key_id": "<hex>", "signature": "<base64url>"}`` where the
signature is Ed25519 over JCS(payload). Record: ``{"seq", "recorded_at", "prev",
"envelope"}``; its leaf hash is SHA-256(0x00 || JCS(record)).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.protocol.canonical import ProtocolError, canonical_bytes, pointer_token
from ledger.protocol.hashing import leaf_hash
from ledger.protocol.keys import key_id, public_key_raw

ENVELOPE_FIELDS = frozenset({"payload", "key_id", "signature"})
RECORD_FIELDS = frozenset({"seq", "recorded_at", "prev", "envelope"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
# 64 bytes = 85 full characters + one carrying the last 2 bits and 4 zero padding bits, so
# the last character is one of A, Q, g, w: exactly one string encodes each signature.
_B64URL_SIG = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
_B64URL_TEXT = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; raise ValueError on anything else."""
    if not _B64URL_TEXT.fullmatch(text):
        raise ValueError("not base64url: only A-Z a-z 0-9 - _ and trailing = are allowed")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def make_envelope(private_key: Ed25519PrivateKey, payload: dict[str, Any]) -> dict[str, Any]:
    """Sign ``payload`` and return the envelope to submit."""
    signature = private_key.sign(canonical_bytes(payload))
    return {
        "payload": payload,
        "key_id": key_id(public_key_raw(private_key)),
        "signature": b64url_encode(signature),
    }


@dataclass(frozen=True, slots=True)
class CheckedEnvelope:
    """An envelope whose shape is valid; ``payload_bytes`` is JCS(payload)."""

    payload: dict[str, Any]
    key_id: str
    signature: str
    payload_bytes: bytes


def check_envelope_shape(envelope: Any, pointer: str = "") -> CheckedEnvelope:
    """Check that ``envelope`` has exactly the three fields, well-formed; canonicalise payload."""
    if not isinstance(envelope, dict):
        raise ProtocolError("invalid-envelope", "An envelope is a JSON object.", pointer)
    fields = set(envelope)
    if fields != ENVELOPE_FIELDS:
        missing = sorted(ENVELOPE_FIELDS - fields)
        extra = sorted(fields - ENVELOPE_FIELDS)
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(repr(name) for name in extra)}")
        first = extra[0] if extra else missing[0]
        raise ProtocolError(
            "invalid-envelope",
            "An envelope has exactly payload, key_id and signature: " + "; ".join(parts) + ".",
            f"{pointer}/{pointer_token(first)}",
        )
    payload, kid, signature = envelope["payload"], envelope["key_id"], envelope["signature"]
    if not isinstance(payload, dict):
        raise ProtocolError("invalid-envelope", "payload must be a JSON object.", f"{pointer}/payload")
    if not isinstance(kid, str) or not _HEX64.fullmatch(kid):
        raise ProtocolError(
            "invalid-envelope",
            "key_id must be the lowercase hex SHA-256 of the raw public key (64 hex digits).",
            f"{pointer}/key_id",
        )
    if not isinstance(signature, str) or not _B64URL_SIG.fullmatch(signature):
        raise ProtocolError(
            "invalid-envelope",
            "signature must be 64 bytes as canonical unpadded base64url (86 characters).",
            f"{pointer}/signature",
        )
    try:
        payload_bytes = canonical_bytes(payload)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.detail, f"{pointer}/payload") from exc
    return CheckedEnvelope(payload, kid, signature, payload_bytes)


def verify_signature(checked: CheckedEnvelope, public_key: Ed25519PublicKey) -> bool:
    """True iff the envelope's signature verifies over JCS(payload) under ``public_key``."""
    try:
        public_key.verify(b64url_decode(checked.signature), checked.payload_bytes)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_envelope(envelope: Any, public_key: Ed25519PublicKey) -> CheckedEnvelope:
    """Check shape and signature; raise ProtocolError("bad-signature") if it does not verify."""
    checked = check_envelope_shape(envelope)
    if key_id(public_key_raw(public_key)) != checked.key_id:
        raise ProtocolError("unknown-key", "key_id does not name this public key.", "/key_id")
    if not verify_signature(checked, public_key):
        raise ProtocolError("bad-signature", "The signature does not verify over JCS(payload).", "/signature")
    return checked


def record_bytes(
    seq: int, recorded_at: str, prev: str, key_id_hex: str, payload_bytes: bytes, signature: str
) -> bytes:
    """JCS(record) built around the already canonical payload bytes.

    Equal to ``canonical_bytes({"seq": ..., "recorded_at": ..., "prev": ..., "envelope":
    {...}})`` (tested), but costs a string join instead of a second canonicalisation: the
    record's other members are ASCII strings without escapes and an integer, and JCS sorts
    members as envelope < prev < recorded_at < seq (and key_id < payload < signature).
    """
    return b"".join(
        (
            b'{"envelope":{"key_id":"',
            key_id_hex.encode("ascii"),
            b'","payload":',
            payload_bytes,
            b',"signature":"',
            signature.encode("ascii"),
            b'"},"prev":"',
            prev.encode("ascii"),
            b'","recorded_at":"',
            recorded_at.encode("ascii"),
            b'","seq":',
            str(seq).encode("ascii"),
            b"}",
        )
    )


def record_leaf_hash(record: dict[str, Any]) -> bytes:
    """Leaf hash of a record given as a JSON object (checks it has exactly the four fields)."""
    if not isinstance(record, dict) or set(record) != RECORD_FIELDS:
        raise ProtocolError("invalid-record", "A record has exactly seq, recorded_at, prev and envelope.")
    return leaf_hash(canonical_bytes(record))
