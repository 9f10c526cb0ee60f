"""C2SP signed notes and tlog checkpoints (ledger/protocol/note.py). No Django, no database."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.protocol.keys import public_key_raw
from ledger.protocol.note import (
    Checkpoint,
    NoteError,
    format_checkpoint,
    note_key_id,
    open_note,
    parse_checkpoint,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    signature_line,
    verify_checkpoint,
    verify_note,
    vkey,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "merkle"
EXAMPLE = json.loads((VECTORS / "c2sp_signed_note_example.json").read_text())
ORIGIN = "ledger.example/log"
ROOT = bytes(range(32))


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)


@pytest.fixture(scope="module")
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)


# --- the C2SP example --------------------------------------------------------------------------


def test_c2sp_example_verifies() -> None:
    assert verify_note(EXAMPLE["note"], [EXAMPLE["vkey"]]) == EXAMPLE["signed_text"]
    assert verify_note(EXAMPLE["note"].encode(), [EXAMPLE["vkey"]]) == EXAMPLE["signed_text"]


def test_c2sp_example_vkey() -> None:
    v = parse_vkey(EXAMPLE["vkey"])
    raw = bytes.fromhex(EXAMPLE["public_key_hex"])
    assert v.name == EXAMPLE["key_name"]
    assert v.key_id.hex() == EXAMPLE["key_id_hex"]
    assert public_key_raw(v.public_key) == raw
    assert note_key_id(EXAMPLE["key_name"], raw).hex() == EXAMPLE["key_id_hex"]
    assert vkey(EXAMPLE["key_name"], raw) == EXAMPLE["vkey"]


def _flip_signature_bit(note: str, bit: int) -> str:
    text, _, sigline = note.rpartition("\n\n")
    prefix, _, b64 = sigline.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[bit // 8] ^= 1 << (bit % 8)
    return f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


def test_c2sp_example_flipped_bits_fail() -> None:
    note = EXAMPLE["note"]
    # A flipped bit in the text.
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(note.replace("example", "exbmple", 1), [EXAMPLE["vkey"]])
    # A flipped bit in the signature itself: known key, bad signature.
    with pytest.raises(NoteError) as info:
        verify_note(_flip_signature_bit(note, 40), [EXAMPLE["vkey"]])
    assert info.value.code == "invalid-signature"
    # A flipped bit in the key ID: the signature becomes an unknown key's, so nothing verifies.
    with pytest.raises(NoteError) as info:
        verify_note(_flip_signature_bit(note, 0), [EXAMPLE["vkey"]])
    assert info.value.code == "no-known-signature"


def test_c2sp_example_unknown_extra_signature_ignored(other_key: Ed25519PrivateKey) -> None:
    extra = signature_line(EXAMPLE["signed_text"], "witness.example/w1", other_key)
    note = EXAMPLE["note"] + extra
    opened = open_note(note, [EXAMPLE["vkey"]])
    assert opened.text == EXAMPLE["signed_text"]
    assert [s.name for s in opened.verified] == [EXAMPLE["key_name"]]
    assert [s.name for s in opened.unverified] == ["witness.example/w1"]
    # Unknown signature first, garbage-signature unknown key: still ignored.
    bogus = "\u2014 someone.else " + base64.b64encode(b"\x01\x02\x03\x04" + b"x" * 64).decode()
    note2 = EXAMPLE["signed_text"] + "\n" + bogus + "\n" + EXAMPLE["note"].split("\n\n")[1]
    assert verify_note(note2, [EXAMPLE["vkey"]]) == EXAMPLE["signed_text"]


def test_only_unknown_signatures_rejected(other_key: Ed25519PrivateKey) -> None:
    with pytest.raises(NoteError) as info:
        verify_note(EXAMPLE["note"], [vkey("example.com/bar", other_key)])
    assert info.value.code == "no-known-signature"
    with pytest.raises(NoteError):
        verify_note(EXAMPLE["note"], [])


def test_same_name_different_key_is_unknown(other_key: Ed25519PrivateKey) -> None:
    """Name matches but key ID does not: ignored, so nothing verifies."""
    with pytest.raises(NoteError) as info:
        verify_note(EXAMPLE["note"], [vkey(EXAMPLE["key_name"], other_key)])
    assert info.value.code == "no-known-signature"


# --- signing ------------------------------------------------------------------------------------


def test_sign_and_verify_round_trip(log_key: Ed25519PrivateKey) -> None:
    text = "hello\n\nsecond paragraph\n"
    note = sign_note(text, ORIGIN, log_key)
    assert note.startswith(text + "\n\u2014 " + ORIGIN + " ")
    assert verify_note(note, [vkey(ORIGIN, log_key)]) == text


def test_key_rotation_two_signatures(
    log_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    text = "rotating\n"
    note = text + "\n" + signature_line(text, ORIGIN, log_key) + signature_line(
        text, ORIGIN, other_key
    )
    for known in ([vkey(ORIGIN, log_key)], [vkey(ORIGIN, other_key)]):
        assert verify_note(note, known) == text
    opened = open_note(note, [vkey(ORIGIN, log_key), vkey(ORIGIN, other_key)])
    assert len(opened.verified) == 2


def test_many_signatures_accepted(log_key: Ed25519PrivateKey) -> None:
    text = "cosigned\n"
    witnesses = [
        signature_line(text, f"w{i}.example", Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32))
        for i in range(20)
    ]
    note = text + "\n" + "".join(witnesses) + signature_line(text, ORIGIN, log_key)
    assert verify_note(note, [vkey(ORIGIN, log_key)]) == text


@pytest.mark.parametrize(
    "text",
    ["", "no final newline", "tab\there\n", "cr\r\n", "nul\x00\n", "lone \ud800 surrogate\n"],
)
def test_sign_rejects_bad_text(text: str, log_key: Ed25519PrivateKey) -> None:
    with pytest.raises(NoteError):
        sign_note(text, ORIGIN, log_key)


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "nbsp\u00a0name", "nl\n"])
def test_bad_key_names_rejected(name: str, log_key: Ed25519PrivateKey) -> None:
    with pytest.raises(NoteError):
        sign_note("x\n", name, log_key)
    with pytest.raises(NoteError):
        vkey(name, log_key)


def test_malformed_notes_rejected(log_key: Ed25519PrivateKey) -> None:
    known = [vkey(ORIGIN, log_key)]
    note = sign_note("body\n", ORIGIN, log_key)
    bad = [
        note.replace("\u2014", "-"),  # hyphen instead of em dash
        note.replace("\u2014 ", "\u2014"),  # no space after the dash
        note.replace("\n\n", "\n"),  # no blank separator line
        note.rstrip("\n"),  # no final newline
        note.replace("body", "bo\x07dy"),  # control character
        note.replace(f"{ORIGIN} ", f"{ORIGIN}  "),  # double space
        note + "\n",  # trailing blank line
        note.replace("=\n", "\n"),  # broken base64 padding
        "body\n\n\u2014 " + ORIGIN + " AAAA\n",  # signature shorter than 5 bytes
    ]
    for candidate in bad:
        with pytest.raises(NoteError):
            verify_note(candidate, known)


def test_too_many_signature_lines_rejected(log_key: Ed25519PrivateKey) -> None:
    text = "x\n"
    line = signature_line(text, "w.example", log_key)
    note = text + "\n" + line * 100 + signature_line(text, ORIGIN, log_key)
    with pytest.raises(NoteError, match="More than"):
        verify_note(note, [vkey(ORIGIN, log_key)])


def test_parse_vkey_rejects(log_key: Ed25519PrivateKey) -> None:
    good = vkey(ORIGIN, log_key)
    name, key_id, key = good.split("+")
    bad_key = base64.b64encode(b"\x04" + public_key_raw(log_key)).decode()
    identity = b"\x01" + b"\x00" * 31  # the small-order identity point
    small_order = base64.b64encode(b"\x01" + identity).decode()
    small_order_id = note_key_id(name, identity).hex()
    for candidate in [
        f"{name}+{key_id}",
        f"{name}+00000000+{key}",
        f"{name}+{key_id.upper()}+{key}",
        f"{name}+{key_id}+{bad_key}",
        f"{name}+{key_id}+{key[:-4]}",
        f"{name}+{small_order_id}+{small_order}",
        f"other+{key_id}+{key}",
    ]:
        with pytest.raises(NoteError):
            parse_vkey(candidate)


# --- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_round_trip(log_key: Ed25519PrivateKey) -> None:
    body = format_checkpoint(ORIGIN, 1234, ROOT)
    assert body == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    assert parse_checkpoint(body) == Checkpoint(ORIGIN, 1234, ROOT, ())
    note = sign_checkpoint(ORIGIN, 1234, ROOT, log_key)
    assert verify_checkpoint(note, [vkey(ORIGIN, log_key)], origin=ORIGIN) == Checkpoint(
        ORIGIN, 1234, ROOT
    )
    assert parse_checkpoint(verify_note(note, [vkey(ORIGIN, log_key)])).size == 1234
    with_ext = format_checkpoint(ORIGIN, 0, ROOT, ["ext one"])
    assert parse_checkpoint(with_ext).extensions == ("ext one",)


def test_checkpoint_origin_checks(log_key: Ed25519PrivateKey, other_key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, log_key)
    with pytest.raises(NoteError) as info:
        verify_checkpoint(note, [vkey(ORIGIN, log_key)], origin="other.example/log")
    assert info.value.code == "wrong-origin"
    # Only a witness's signature is known: the log's own signature is required.
    body = format_checkpoint(ORIGIN, 5, ROOT)
    witnessed = body + "\n" + signature_line(body, "w.example", other_key)
    with pytest.raises(NoteError):
        verify_checkpoint(witnessed, [vkey("w.example", other_key)], origin=ORIGIN)


def test_c2sp_checkpoint_example_parses() -> None:
    body = EXAMPLE["checkpoint_format_example_unverifiable"].split("\n\n")[0] + "\n"
    cp = parse_checkpoint(body)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert len(cp.root) == 32


ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n01\n{ROOT_B64}\n",  # leading zero
        f"{ORIGIN}\n00\n{ROOT_B64}\n",
        f"{ORIGIN}\n+1\n{ROOT_B64}\n",
        f"{ORIGIN}\n-1\n{ROOT_B64}\n",
        f"{ORIGIN}\n 1\n{ROOT_B64}\n",
        f"{ORIGIN}\n1.0\n{ROOT_B64}\n",
        f"{ORIGIN}\n\u0661\n{ROOT_B64}\n",  # Arabic-Indic digit one
        f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n",  # beyond uint64
        f"{ORIGIN}\n1\n{ROOT_B64[:-1]}\n",  # bad base64 (padding)
        f"{ORIGIN}\n1\n{ROOT_B64.replace('A', '*')}\n",  # bad base64 (alphabet)
        f"{ORIGIN}\n1\n{base64.urlsafe_b64encode(bytes([251]) * 32).decode()}\n",  # base64url
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31-byte root
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",  # 33-byte root
        f"{ORIGIN}\n1\n",  # missing root line
        f"{ORIGIN}\n",  # missing size and root
        f"\n1\n{ROOT_B64}\n",  # empty origin
        f"{ORIGIN}\n1\n{ROOT_B64}",  # no final newline
        f"{ORIGIN}\n1\n{ROOT_B64}\n\next\n",  # empty extension line
        f"{ORIGIN}\r\n1\n{ROOT_B64}\n",  # control character
    ],
)
def test_malformed_checkpoints_rejected(body: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(body)


def test_format_checkpoint_rejects(log_key: Ed25519PrivateKey) -> None:
    for origin, size, root in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, 1, ROOT[:31]),
    ]:
        with pytest.raises(NoteError):
            format_checkpoint(origin, size, root)
    with pytest.raises(NoteError):
        sign_checkpoint("has space", 1, ROOT, log_key)  # origin is the key name


def test_vkey_whose_base64_contains_plus_parses() -> None:
    """Regression: the key's standard base64 may contain "+", which also separates the
    vkey's fields; only the first two "+" are separators."""
    from ledger.protocol.keys import generate_private_key, public_key_raw
    from ledger.protocol.note import parse_vkey, vkey

    for _ in range(200):
        key = generate_private_key()
        text = vkey("example.com/log", key)
        if text.split("+", 2)[2].count("+"):
            parsed = parse_vkey(text)
            assert public_key_raw(parsed.public_key) == public_key_raw(key)
            return
    raise AssertionError("no key with '+' in its base64 in 200 tries")
