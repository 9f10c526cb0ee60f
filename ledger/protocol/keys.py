"""Ed25519 keys: key ids, strict public-key acceptance, private key files.

Signing keys are accepted only if their encoding is canonical and the point they encode
is on the curve, not of small order and in the prime-order subgroup. pyca/cryptography
follows the ref10 verification rule, which does not refuse such keys by itself, and a
small-order key lets anybody forge "valid" signatures (see vectors/ed25519/, CCTV).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.protocol.canonical import ProtocolError
from ledger.protocol.hashing import sha256_hex

# Curve25519 in twisted Edwards form (RFC 8032 section 5.1).
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


class KeyRejected(ProtocolError):
    """A public key that must not be registered (malformed, off-curve, weak)."""

    def __init__(self, detail: str) -> None:
        super().__init__("key-rejected", detail, "/public_key")


def key_id(public_key_raw: bytes) -> str:
    """Lowercase hex SHA-256 of the raw 32-byte public key (DESIGN "The log")."""
    return sha256_hex(public_key_raw)


def _decode_point(raw: bytes) -> tuple[int, int]:
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        raise KeyRejected("The public key's y coordinate is not canonically encoded.")
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    # x = sqrt(u/v) per RFC 8032 section 5.1.3.
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = (x * _SQRT_M1) % _P
        if (v * x * x - u) % _P != 0:
            raise KeyRejected("The public key is not a point on Ed25519.")
    if x == 0 and sign == 1:
        raise KeyRejected("The public key encodes x = 0 with the sign bit set (non-canonical).")
    if x & 1 != sign:
        x = _P - x
    return x, y


# Extended homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z.
_Point = tuple[int, int, int, int]
_IDENTITY: _Point = (0, 1, 1, 0)


def _add(p: _Point, q: _Point) -> _Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(k: int, p: _Point) -> _Point:
    result = _IDENTITY
    while k:
        if k & 1:
            result = _add(result, p)
        p = _add(p, p)
        k >>= 1
    return result


def _is_identity(p: _Point) -> bool:
    x, y, z, _ = p
    return x % _P == 0 and (y - z) % _P == 0


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    """Return the public key for 32 raw bytes, or raise KeyRejected.

    Rejects wrong lengths, non-canonical encodings, points off the curve, small-order
    points and points with a torsion component.
    """
    if len(raw) != 32:
        raise KeyRejected(f"An Ed25519 public key is 32 bytes, not {len(raw)}.")
    x, y = _decode_point(raw)
    point: _Point = (x, y, 1, x * y % _P)
    if _is_identity(_mul(8, point)):
        raise KeyRejected("The public key is a small-order point; anyone could forge its signatures.")
    if not _is_identity(_mul(_L, point)):
        raise KeyRejected("The public key is not in the prime-order subgroup (it has a torsion part).")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_raw(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The raw 32 public-key bytes of a public or private key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 private key from the operating system's CSPRNG."""
    return Ed25519PrivateKey.generate()


def write_private_key_file(key: Ed25519PrivateKey, path: str | Path) -> None:
    """Write the key as unencrypted PKCS#8 PEM, created with mode 0600; never overwrite."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def load_private_key_file(path: str | Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PKCS#8 PEM file."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ProtocolError("wrong-key-type", f"{path} does not hold an Ed25519 private key.")
    return key
