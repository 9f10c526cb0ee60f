"""Ed25519 against RFC 8032, Wycheproof and CCTV, and our public-key registration rule.

Vectors: ../shared/vectors/ed25519/ (see PROVENANCE.md there), read in place.

Registration rule (ledger.protocol.keys.public_key_from_bytes): accept a 32-byte key only if
its encoding is canonical and it is a point of the prime-order subgroup. Verification is
pyca/cryptography's (the ref10 rule); the tests pin both so that the service and the offline
verifier cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.protocol.canonical import ProtocolError
from ledger.protocol.keys import (
    KeyRejected,
    generate_private_key,
    key_id,
    public_key_from_bytes,
    public_key_raw,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
ED = VECTORS / "ed25519"

P = 2**255 - 19

# What a KeyRejected detail says for each acceptable reason to refuse a key.
REASON_WORDS = ("small-order", "torsion", "not canonically encoded", "non-canonical")


def _load(name: str) -> Any:
    return json.loads((ED / name).read_text(encoding="utf-8"))


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _verifies(key: Ed25519PublicKey, sig: bytes, msg: bytes) -> bool:
    try:
        key.verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def _registered(raw: bytes) -> Ed25519PublicKey | None:
    try:
        return public_key_from_bytes(raw)
    except KeyRejected:
        return None


def test_vectors_are_where_we_expect() -> None:
    assert ED.is_dir(), f"Ed25519 vectors not found at {ED}"


# --- RFC 8032 section 7.1 ----------------------------------------------------------------------

RFC = _load("rfc8032_section7_1.json")["vectors"]


def test_rfc8032_has_five_vectors() -> None:
    assert [v["name"] for v in RFC] == ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "TEST SHA(abc)"]


@pytest.mark.parametrize("vector", RFC, ids=[v["name"] for v in RFC])
def test_rfc8032_sign_and_verify(vector: dict[str, Any]) -> None:
    seed = bytes.fromhex(vector["secret_key"])
    pub = bytes.fromhex(vector["public_key"])
    msg = bytes.fromhex(vector["message"])
    sig = bytes.fromhex(vector["signature"])
    assert len(msg) == vector["message_length"]

    private = Ed25519PrivateKey.from_private_bytes(seed)
    assert public_key_raw(private) == pub
    # Raw signing, independent of make_envelope: deterministic, byte-for-byte.
    assert private.sign(msg) == sig

    public = public_key_from_bytes(pub)
    assert _raw(public) == pub
    public.verify(sig, msg)
    assert key_id(pub) == key_id(_raw(public))
    assert not _verifies(public, sig, msg + b"\x00")
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not _verifies(public, flipped, msg)


# --- Wycheproof -----------------------------------------------------------------------------

WYCHEPROOF = _load("wycheproof_ed25519_test.json")
WYCHEPROOF_TESTS = [
    (group["publicKey"]["pk"], test)
    for group in WYCHEPROOF["testGroups"]
    for test in group["tests"]
]


def test_wycheproof_count() -> None:
    assert WYCHEPROOF["numberOfTests"] == len(WYCHEPROOF_TESTS) == 151
    assert {t["result"] for _, t in WYCHEPROOF_TESTS} == {"valid", "invalid"}


@pytest.mark.parametrize(
    ("pk_hex", "test"), WYCHEPROOF_TESTS, ids=[f"tc{t['tcId']}" for _, t in WYCHEPROOF_TESTS]
)
def test_wycheproof(pk_hex: str, test: dict[str, Any]) -> None:
    raw = bytes.fromhex(pk_hex)
    try:
        key = public_key_from_bytes(raw)
    except KeyRejected as exc:
        # Registration may only refuse keys that are small-order, non-canonical or torsion.
        assert any(word in exc.detail for word in REASON_WORDS), exc.detail
        key = Ed25519PublicKey.from_public_bytes(raw)
    ok = _verifies(key, bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"]))
    assert ok == (test["result"] == "valid"), (test["tcId"], test["comment"], test["flags"])


def test_wycheproof_keys_all_registrable() -> None:
    """Wycheproof's keys are ordinary keys: none is refused at registration."""
    keys = {pk for pk, _ in WYCHEPROOF_TESTS}
    refused = [pk for pk in keys if _registered(bytes.fromhex(pk)) is None]
    assert not refused


# --- CCTV edge cases ------------------------------------------------------------------------

CCTV = _load("cctv_ed25519vectors.json")
A_FLAGS = {"low_order_A", "low_order_component_A", "non_canonical_A"}


def _flags(vector: dict[str, Any]) -> set[str]:
    return set(vector["flags"] or [])


def _cctv_library_verifies(vector: dict[str, Any]) -> bool:
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["key"]))
    return _verifies(key, bytes.fromhex(vector["sig"]), vector["msg"].encode("utf-8"))


def test_cctv_count() -> None:
    assert len(CCTV) == 914
    assert all(len(bytes.fromhex(v["key"])) == 32 for v in CCTV)
    assert all(len(bytes.fromhex(v["sig"])) == 64 for v in CCTV)


def test_cctv_low_order_keys_rejected() -> None:
    low_order = [v for v in CCTV if "low_order_A" in _flags(v)]
    assert len(low_order) == 526
    accepted = [v["number"] for v in low_order if _registered(bytes.fromhex(v["key"]))]
    assert not accepted, f"small-order keys accepted at registration: {accepted}"


def test_cctv_registration_rejects_exactly_the_weak_keys() -> None:
    """Stronger than the small-order rule: any torsion or non-canonical A is refused too,
    and every key without an A flag is accepted."""
    wrong = []
    for v in CCTV:
        raw = bytes.fromhex(v["key"])
        try:
            public_key_from_bytes(raw)
            accepted = True
        except KeyRejected as exc:
            accepted = False
            assert any(word in exc.detail for word in REASON_WORDS), exc.detail
        if accepted == bool(_flags(v) & A_FLAGS):
            wrong.append((v["number"], sorted(_flags(v)), accepted))
    assert not wrong, wrong[:10]


def test_cctv_accepted_key_with_no_flags_verifies() -> None:
    clean = [v for v in CCTV if not _flags(v)]
    assert clean, "CCTV has a flagless vector"
    for v in clean:
        key = _registered(bytes.fromhex(v["key"]))
        if key is None:
            continue
        key.verify(bytes.fromhex(v["sig"]), v["msg"].encode("utf-8"))


def test_cctv_cryptography_follows_the_ref10_rule() -> None:
    """pyca/cryptography accepts iff neither non_canonical_R nor low_order_residue is set.

    Small-order and non-canonical A, small-order R and re-encoded k all pass the library's
    verify, which is why registration must refuse weak keys.
    """
    mismatches = []
    accepted = 0
    for v in CCTV:
        ok = _cctv_library_verifies(v)
        accepted += ok
        if ok != (not _flags(v) & {"non_canonical_R", "low_order_residue"}):
            mismatches.append((v["number"], sorted(_flags(v)), ok))
    assert not mismatches, mismatches[:10]
    assert accepted == 208


def test_cctv_with_registration_only_prime_order_keys_verify() -> None:
    """Combining registration and verify: what remains accepted has a prime-order,
    canonical A; the only edge left is a small-order R, which its own signer chose."""
    survivors = [
        v for v in CCTV if _registered(bytes.fromhex(v["key"])) and _cctv_library_verifies(v)
    ]
    assert all(not _flags(v) & A_FLAGS for v in survivors)
    assert all(_flags(v) <= {"low_order_R"} for v in survivors)
    assert len(survivors) == 2


# --- registration unit tests ------------------------------------------------------------------


def _encode_y(y: int, sign: int = 0) -> bytes:
    return (y | (sign << 255)).to_bytes(32, "little")


def _off_curve_y() -> int:
    """The smallest y for which (y^2 - 1) / (d y^2 + 1) has no square root mod p."""
    d = (-121665 * pow(121666, P - 2, P)) % P
    for y in range(2, 1000):
        u = (y * y - 1) % P
        v = (d * y * y + 1) % P
        if pow(u * pow(v, P - 2, P), (P - 1) // 2, P) == P - 1:
            return y
    raise AssertionError("no off-curve y found")


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_length_rejected(length: int) -> None:
    with pytest.raises(KeyRejected) as info:
        public_key_from_bytes(b"\x42" * length)
    assert "32 bytes" in info.value.detail
    assert str(length) in info.value.detail


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        pytest.param(bytes(32), "small-order", id="all-zero"),
        pytest.param(_encode_y(1), "small-order", id="identity"),
        pytest.param(_encode_y(P - 1), "small-order", id="order-2"),
        pytest.param(_encode_y(P), "not canonically encoded", id="y=p"),
        pytest.param(_encode_y(P + 1), "not canonically encoded", id="y=p+1-identity"),
        pytest.param(_encode_y(2**255 - 1), "not canonically encoded", id="y=2^255-1"),
        pytest.param(_encode_y(1, sign=1), "sign bit", id="identity-negative-zero"),
        pytest.param(_encode_y(_off_curve_y()), "not a point", id="off-curve"),
    ],
)
def test_bad_keys_rejected_with_reason(raw: bytes, words: str) -> None:
    with pytest.raises(KeyRejected) as info:
        public_key_from_bytes(raw)
    assert words in info.value.detail
    assert isinstance(info.value, ProtocolError)
    assert info.value.code == "key-rejected"
    assert info.value.pointer == "/public_key"


def test_torsion_component_rejected() -> None:
    """A key of order 8L (prime-order part plus a small-order part), taken from CCTV."""
    mixed = next(v for v in CCTV if _flags(v) & A_FLAGS == {"low_order_component_A"})
    with pytest.raises(KeyRejected) as info:
        public_key_from_bytes(bytes.fromhex(mixed["key"]))
    assert "torsion" in info.value.detail


def test_fresh_keys_accepted() -> None:
    for _ in range(100):
        private = generate_private_key()
        raw = public_key_raw(private)
        public = public_key_from_bytes(raw)
        assert _raw(public) == raw
        public.verify(private.sign(b"magnet"), b"magnet")
        assert len(key_id(raw)) == 64
