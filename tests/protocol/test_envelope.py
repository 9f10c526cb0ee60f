"""Envelopes and records: the fast record serialisation, verification, private key files."""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.protocol.canonical import MAX_SAFE_INTEGER, ProtocolError, canonical_bytes, parse_json
from ledger.protocol.envelope import (
    b64url_decode,
    b64url_encode,
    check_envelope_shape,
    make_envelope,
    record_bytes,
    record_leaf_hash,
    verify_envelope,
)
from ledger.protocol.hashing import ZERO_HASH_HEX, leaf_hash
from ledger.protocol.keys import (
    generate_private_key,
    key_id,
    load_private_key_file,
    public_key_raw,
    write_private_key_file,
)

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Characters chosen to hit JCS corner cases: escapes, controls, U+007F and U+2028 (raw in
# JCS), non-ASCII, astral characters (surrogate pairs in UTF-16) and private-use characters
# above the surrogate range, which sort differently by code unit than by code point.
TRICKY = [
    "\n",
    "\r",
    "\t",
    "\b",
    "\f",
    "\x00",
    "\x01",
    "\x1f",
    '"',
    "\\",
    "/",
    "\x7f",
    "\u2028",
    "\u2029",
    "é",
    "€",
    "Dy",
    "Nd",
    "ß",
    "\ue000",
    "\uffff",
    "\ufb33",
    "\U0001f602",
    "\U00010000",
    "\U0010ffff",
    "a",
    "Z",
    "0",
    " ",
    "<",
    "'",
]
# Pairs whose order differs between UTF-16 code units and code points.
UTF16_TRAPS = [("\ue000", "\U00010000"), ("\ufb33", "\U0001f602"), ("\uffff", "\U0010ffff")]


def _string(rng: random.Random) -> str:
    return "".join(rng.choice(TRICKY) for _ in range(rng.randint(0, 8)))


def _number(rng: random.Random) -> int | float:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice([0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, -(2**32)])
    if kind == 1:
        return rng.randint(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    if kind == 2:
        return rng.randint(0, 10**6)
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind == 4:
        return rng.choice([0.5, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 0.1 + 0.2])
    return float(rng.randint(-(10**6), 10**6))


def _value(rng: random.Random, depth: int) -> Any:
    kinds = ["str", "num", "bool", "null"] + (["obj", "arr"] * 2 if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return _string(rng)
    if kind == "num":
        return _number(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "arr":
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return _object(rng, depth + 1)


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for _ in range(rng.randint(0, 5)):
        obj[_string(rng)] = _value(rng, depth)
    if rng.random() < 0.5:
        for a, b in rng.sample(UTF16_TRAPS, 2):
            obj[a] = _value(rng, depth)
            obj[b] = _value(rng, depth)
    return obj


def _payload(rng: random.Random) -> dict[str, Any]:
    payload = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": rng.choice(["intake", "ship", "receive", "transform", "assay"]),
        "org": "recyc-" + "".join(rng.choice("abcdefgh") for _ in range(5)),
        "facility": rng.choice(["plant-1", "Zürich", "東京", "\U0001f9f2 yard"]),
        "occurred_at": "2025-03-01T12:00:00Z",
        "mass_g": rng.randint(0, MAX_SAFE_INTEGER),
        "note": _string(rng),
        "composition": {"Nd": 230000, "Pr": 60000, "Dy": 20000, "B": 10000, "Fe": 660000},
    }
    payload.update(_object(rng, 1))
    return payload


def _recorded_at(rng: random.Random) -> str:
    micro = rng.choice(["", f".{rng.randrange(10**6):06d}"])
    date = f"20{rng.randrange(20, 40)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)}"
    time = f"0{rng.randrange(10)}:1{rng.randrange(10)}:2{rng.randrange(10)}"
    return f"{date}T{time}{micro}Z"


@pytest.fixture(scope="module")
def private_key() -> Any:
    return generate_private_key()


# --- record_bytes == JCS(record) ----------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_record_bytes_equals_canonical_bytes(seed: int, private_key: Any) -> None:
    rng = random.Random(seed)
    for i in range(50):
        payload = _payload(rng)
        if i % 5 == 0:
            envelope = make_envelope(private_key, payload)
        else:
            envelope = {
                "payload": payload,
                "key_id": "".join(rng.choice("0123456789abcdef") for _ in range(64)),
                "signature": b64url_encode(rng.randbytes(64)),
            }
        seq = rng.choice([0, 1, rng.randrange(10**6), MAX_SAFE_INTEGER, rng.randrange(2**53)])
        recorded_at = _recorded_at(rng)
        prev = ZERO_HASH_HEX if seq == 0 else rng.randbytes(32).hex()
        record = {"seq": seq, "recorded_at": recorded_at, "prev": prev, "envelope": envelope}

        fast = record_bytes(
            seq,
            recorded_at,
            prev,
            envelope["key_id"],
            canonical_bytes(payload),
            envelope["signature"],
        )
        assert fast == canonical_bytes(record)
        assert record_leaf_hash(record) == leaf_hash(fast)
        # And the bytes are what a JCS implementation would produce from parsed JSON.
        assert canonical_bytes(parse_json(fast)) == fast


def test_record_bytes_known_answer() -> None:
    payload = {"b": 1, "a": "\u2028\n"}
    payload_bytes = canonical_bytes(payload)
    out = record_bytes(7, "2025-01-01T00:00:00Z", "ab" * 32, "cd" * 32, payload_bytes, "S")
    assert (
        out
        == (
            '{"envelope":{"key_id":"' + "cd" * 32 + '","payload":{"a":"\u2028\\n","b":1},'
            '"signature":"S"},"prev":"' + "ab" * 32 + '","recorded_at":"2025-01-01T00:00:00Z",'
            '"seq":7}'
        ).encode()
    )


@pytest.mark.parametrize(
    "record",
    [
        {"seq": 0, "recorded_at": "x", "prev": ZERO_HASH_HEX},
        {"seq": 0, "recorded_at": "x", "prev": ZERO_HASH_HEX, "envelope": {}, "extra": 1},
        [],
    ],
)
def test_record_leaf_hash_requires_exactly_four_fields(record: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        record_leaf_hash(record)
    assert info.value.code == "invalid-record"


# --- verify_envelope ---------------------------------------------------------------------------


def _fresh(private_key: Any, **extra: Any) -> dict[str, Any]:
    payload = {
        "id": "0b8f7c1e-4a57-4c1b-9a36-2f1d0c3e5a77",
        "type": "intake",
        "org": "acme-recycling",
        "facility": "plant-1",
        "occurred_at": "2025-03-01T12:00:00Z",
        "mass_g": 125000,
        "origin": "post_consumer",
        **extra,
    }
    return make_envelope(private_key, payload)


def test_fresh_envelope_verifies(private_key: Any) -> None:
    envelope = _fresh(private_key, note="Nd\u2028Dy\n")
    checked = verify_envelope(envelope, private_key.public_key())
    assert checked.payload == envelope["payload"]
    assert checked.key_id == key_id(public_key_raw(private_key)) == envelope["key_id"]
    assert checked.payload_bytes == canonical_bytes(envelope["payload"])
    assert len(envelope["signature"]) == 86
    assert len(b64url_decode(envelope["signature"])) == 64


def test_envelope_survives_reserialisation(private_key: Any) -> None:
    """A client may send the payload's members in any order and with any whitespace."""
    nested = {"z": [1, {"b": 2, "a": 1}], "\U0001f602": 0, "\ufb33": 1}
    envelope = _fresh(private_key, nested=nested)
    text = json.dumps(
        {k: envelope[k] for k in reversed(list(envelope))}, indent=3, ensure_ascii=True
    )
    parsed = parse_json(text)
    parsed["payload"] = dict(reversed(list(parsed["payload"].items())))
    verify_envelope(parsed, private_key.public_key())


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.__setitem__("mass_g", 125001),
        lambda p: p.__setitem__("extra", None),
        lambda p: p.pop("origin"),
        lambda p: p.__setitem__("org", "acme-recycling "),
        lambda p: p.__setitem__("mass_g", 125000.5),
    ],
)
def test_modified_payload_rejected(private_key: Any, change: Any) -> None:
    envelope = _fresh(private_key)
    tampered = copy.deepcopy(envelope)
    change(tampered["payload"])
    with pytest.raises(ProtocolError) as info:
        verify_envelope(tampered, private_key.public_key())
    assert info.value.code == "bad-signature"
    assert info.value.pointer == "/signature"


def test_same_number_different_type_still_verifies(private_key: Any) -> None:
    # 125000 and 125000.0 are the same JSON number and the same JCS text.
    envelope = _fresh(private_key)
    envelope["payload"]["mass_g"] = 125000.0
    verify_envelope(envelope, private_key.public_key())


def test_signature_by_another_key_rejected(private_key: Any) -> None:
    other = generate_private_key()
    envelope = _fresh(other)
    envelope["key_id"] = key_id(public_key_raw(private_key))
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, private_key.public_key())
    assert info.value.code == "bad-signature"


def test_zero_signature_rejected(private_key: Any) -> None:
    envelope = _fresh(private_key)
    envelope["signature"] = b64url_encode(bytes(64))
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, private_key.public_key())
    assert info.value.code == "bad-signature"


def test_wrong_key_id_rejected(private_key: Any) -> None:
    envelope = _fresh(private_key)
    envelope["key_id"] = key_id(public_key_raw(generate_private_key()))
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, private_key.public_key())
    assert info.value.code == "unknown-key"
    assert info.value.pointer == "/key_id"


def test_verified_against_the_wrong_public_key(private_key: Any) -> None:
    envelope = _fresh(private_key)
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, generate_private_key().public_key())
    assert info.value.code == "unknown-key"


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda e: e.__setitem__("extra", 1), "unexpected 'extra'"),
        (lambda e: e.__setitem__("seq", 0), "unexpected 'seq'"),
        (lambda e: e.pop("signature"), "missing signature"),
        (lambda e: e.pop("key_id"), "missing key_id"),
        (lambda e: e.pop("payload"), "missing payload"),
        (
            lambda e: (e.pop("key_id"), e.__setitem__("keyid", "x")),
            "missing key_id; unexpected 'keyid'",
        ),
    ],
)
def test_extra_or_missing_field_rejected(private_key: Any, mutate: Any, words: str) -> None:
    envelope = _fresh(private_key)
    mutate(envelope)
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, private_key.public_key())
    assert info.value.code == "invalid-envelope"
    named = sorted(set(envelope) - {"payload", "key_id", "signature"}) or sorted(
        {"payload", "key_id", "signature"} - set(envelope)
    )
    assert info.value.pointer == f"/{named[0]}"
    assert words in info.value.detail
    with pytest.raises(ProtocolError) as info:
        check_envelope_shape(envelope, "/entries/3")
    assert info.value.pointer == f"/entries/3/{named[0]}"


@pytest.mark.parametrize("envelope", [None, [], "envelope", 3])
def test_envelope_must_be_an_object(private_key: Any, envelope: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, private_key.public_key())
    assert info.value.code == "invalid-envelope"
    assert info.value.pointer == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payload", []),
        ("payload", "{}"),
        ("payload", None),
        ("key_id", "AB" * 32),
        ("key_id", "ab" * 31),
        ("key_id", "ab" * 33),
        ("key_id", "g" * 64),
        ("key_id", 123),
    ],
)
def test_malformed_field_rejected_with_pointer(private_key: Any, field: str, value: Any) -> None:
    envelope = _fresh(private_key)
    envelope[field] = value
    with pytest.raises(ProtocolError) as info:
        check_envelope_shape(envelope, "/entries/0")
    assert info.value.code == "invalid-envelope"
    assert info.value.pointer == f"/entries/0/{field}"


def _signature_variants(good: str) -> list[tuple[str, Any]]:
    raw = b64url_decode(good)
    std = base64.b64encode(raw).decode()
    return [
        ("85 chars", good[:-1]),
        ("87 chars", good + "A"),
        ("padded", good + "=="),
        ("empty", ""),
        ("standard alphabet", std.rstrip("=").replace("-", "+").replace("_", "/")[:85] + "+"),
        ("space", good[:40] + " " + good[41:]),
        ("hex", raw.hex()),
        ("bytes", raw),
        ("none", None),
        ("63 bytes", b64url_encode(raw[:63])),
        ("65 bytes", b64url_encode(raw + b"\x00")),
    ]


@pytest.mark.parametrize("index", range(11))
def test_signature_must_be_86_base64url_chars(private_key: Any, index: int) -> None:
    envelope = _fresh(private_key)
    name, value = _signature_variants(envelope["signature"])[index]
    envelope["signature"] = value
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, private_key.public_key())
    assert info.value.code == "invalid-envelope", name
    assert info.value.pointer == "/signature"


def test_signature_encoding_is_canonical(private_key: Any) -> None:
    """Only one 86-character string encodes a given 64-byte signature.

    The 86th character carries 2 signature bits and 4 padding bits; if non-zero padding
    bits were accepted, 16 different envelopes (and leaf hashes) would carry one signature.
    """
    envelope = _fresh(private_key)
    good = envelope["signature"]
    assert good[-1] in "AQgw"
    same_bytes = [
        c for c in B64URL if c != good[-1] and b64url_decode(good[:-1] + c) == b64url_decode(good)
    ]
    assert len(same_bytes) == 15
    for c in same_bytes:
        envelope["signature"] = good[:-1] + c
        with pytest.raises(ProtocolError) as info:
            verify_envelope(envelope, private_key.public_key())
        assert info.value.code == "invalid-envelope"
        assert info.value.pointer == "/signature"


def test_payload_that_cannot_be_canonicalised(private_key: Any) -> None:
    envelope = _fresh(private_key)
    envelope["payload"]["mass_g"] = 2**53
    with pytest.raises(ProtocolError) as info:
        verify_envelope(envelope, private_key.public_key())
    assert info.value.code == "number-out-of-range"
    assert info.value.pointer == "/payload"


def test_make_envelope_refuses_big_integers(private_key: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        _fresh(private_key, mass_g=10**20)
    assert info.value.code == "number-out-of-range"


def test_b64url_round_trip() -> None:
    rng = random.Random(1)
    for n in range(70):
        data = rng.randbytes(n)
        text = b64url_encode(data)
        assert "=" not in text
        assert b64url_decode(text) == data
    with pytest.raises(ValueError):
        b64url_decode("a+b/")


# --- private key files --------------------------------------------------------------------------


def test_write_private_key_file_mode_and_round_trip(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "org.key"
    write_private_key_file(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key_file(path)
    assert public_key_raw(loaded) == public_key_raw(key)
    raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    assert loaded.private_bytes(*raw) == key.private_bytes(*raw)
    # str paths work too
    assert public_key_raw(load_private_key_file(str(path))) == public_key_raw(key)


def test_write_private_key_file_ignores_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private_key_file(generate_private_key(), tmp_path / "k.pem")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600


def test_write_private_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "org.key"
    first = generate_private_key()
    write_private_key_file(first, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_private_key_file(generate_private_key(), path)
    assert path.read_bytes() == before
    assert public_key_raw(load_private_key_file(path)) == public_key_raw(first)


def test_write_private_key_file_refuses_existing_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "org.key"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        write_private_key_file(generate_private_key(), link)
    assert not target.exists()


def test_load_rejects_other_key_types(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ProtocolError) as info:
        load_private_key_file(path)
    assert info.value.code == "wrong-key-type"
