"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A signed note is UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> <base64(4-byte key ID || signature)>`` (em dash U+2014). Only Ed25519
(signature type 0x01) is supported: ``key ID = SHA-256(name || 0x0A || 0x01 || pubkey)[:4]``
and a verifier key ("vkey") is ``<name>+<hex key ID>+<base64(0x01 || pubkey)>``.

Verification follows the spec and Go's golang.org/x/mod/sumdb/note: signatures whose
(name, key ID) pair is not a known key are ignored (witness cosignatures, rotated keys); a
signature by a known key that does not verify rejects the whole note; at least one known key
must verify. Up to ``MAX_SIGNATURES`` (100) signature lines are accepted (the spec requires
at least 16).

A checkpoint is a note whose text is ``<origin>\\n<size>\\n<base64 root>\\n`` plus optional
non-empty extension lines; the log signs it with the key named after the origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.protocol.canonical import ProtocolError
from ledger.protocol.keys import public_key_from_bytes, public_key_raw

SIGTYPE_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100
MAX_TREE_SIZE = 2**64 - 1
ROOT_SIZE = 32

_HEX8 = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteError(ProtocolError):
    """A malformed or unverifiable signed note, verifier key or checkpoint."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail, "")


@dataclass(frozen=True)
class Verifier:
    """A parsed Ed25519 verifier key: name, 4-byte key ID and the public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def verify(self, text: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is a valid Ed25519 signature of ``text`` by this key."""
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class OpenedNote:
    """A verified note: its text, the verified signatures and the ignored unknown ones."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint: origin, tree size, 32-byte root and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Helpers


def _b64decode_strict(text: str) -> bytes:
    """Standard padded base64 (RFC 4648 section 4), canonical encoding only."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or "+" in name
        or any(ch.isspace() for ch in name)
        or not _is_valid_text(name)
    ):
        raise NoteError(
            "malformed-key-name",
            f"Key name {name!r} must be non-empty, without spaces, '+' or control characters.",
        )


def _is_valid_text(text: str) -> bool:
    """Well-formed UTF-8 (no lone surrogates) with no control characters except newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(ch) < 0x20 and ch != "\n" for ch in text)


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text or not text.endswith("\n"):
        raise NoteError("malformed-note", "Note text must be non-empty and end with a newline.")
    if not _is_valid_text(text):
        raise NoteError("malformed-note", "Note text must be UTF-8 with no control characters but newline.")


# ---------------------------------------------------------------------------------------------
# Keys


def note_key_id(name: str, public_raw: bytes) -> bytes:
    """The 4-byte key ID ``SHA-256(name || 0x0A || 0x01 || public_raw)[:4]`` (Ed25519)."""
    _check_name(name)
    material = name.encode("utf-8") + b"\n" + bytes([SIGTYPE_ED25519]) + public_raw
    return hashlib.sha256(material).digest()[:4]


def vkey(name: str, public_key: Ed25519PublicKey | Ed25519PrivateKey | bytes) -> str:
    """The verifier key string ``<name>+<hex key ID>+<base64(0x01 || pubkey)>``."""
    raw = public_key if isinstance(public_key, bytes) else public_key_raw(public_key)
    if len(raw) != 32:
        raise NoteError("malformed-vkey", f"An Ed25519 public key is 32 bytes, not {len(raw)}.")
    key_id = note_key_id(name, raw)
    return f"{name}+{key_id.hex()}+{_b64encode(bytes([SIGTYPE_ED25519]) + raw)}"


def parse_vkey(text: str) -> Verifier:
    """Parse a verifier key; raise NoteError if malformed, not Ed25519 or its ID mismatches.

    The public key must pass ``keys.public_key_from_bytes`` (canonical, not small-order).
    """
    # Standard base64 may itself contain "+", so only the first two are separators.
    parts = text.split("+", 2) if isinstance(text, str) else []
    if len(parts) != 3:
        raise NoteError("malformed-vkey", "A verifier key is <name>+<hex key ID>+<base64 key>.")
    name, id_hex, key_b64 = parts
    _check_name(name)
    if not _HEX8.fullmatch(id_hex):
        raise NoteError("malformed-vkey", "The verifier key ID must be 8 lowercase hex digits.")
    try:
        key = _b64decode_strict(key_b64)
    except ValueError as exc:
        raise NoteError("malformed-vkey", "The verifier key is not valid base64.") from exc
    if len(key) != 33 or key[0] != SIGTYPE_ED25519:
        raise NoteError(
            "malformed-vkey", "Only Ed25519 verifier keys (type 0x01, 32-byte key) are supported."
        )
    raw = key[1:]
    if note_key_id(name, raw) != bytes.fromhex(id_hex):
        raise NoteError("malformed-vkey", "The verifier key ID does not match its name and key.")
    try:
        public = public_key_from_bytes(raw)
    except ProtocolError as exc:
        raise NoteError("malformed-vkey", f"Verifier key rejected: {exc.detail}") from exc
    return Verifier(name=name, key_id=bytes.fromhex(id_hex), public_key=public)


# ---------------------------------------------------------------------------------------------
# Signing and verification


def signature_line(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """One ``— <name> <base64(key ID || sig)>\\n`` line signing ``text`` (for multi-signing)."""
    _check_text(text)
    _check_name(name)
    key_id = note_key_id(name, public_key_raw(private_key))
    sig = private_key.sign(text.encode("utf-8"))
    return f"{SIG_PREFIX}{name} {_b64encode(key_id + sig)}\n"


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` (non-empty, ending in newline) with one Ed25519 key named ``name``.

    Returns ``text + "\\n" + signature line``. To sign with several keys (rotation), join
    ``text + "\\n"`` with several ``signature_line`` results.
    """
    return text + "\n" + signature_line(text, name, private_key)


def _known_map(known_vkeys: Iterable[str | Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for item in known_vkeys:
        v = item if isinstance(item, Verifier) else parse_vkey(item)
        slot = (v.name, v.key_id)
        if slot in known and public_key_raw(known[slot].public_key) != public_key_raw(v.public_key):
            raise NoteError("ambiguous-key", f"Two known keys share name {v.name!r} and ID {v.key_id.hex()}.")
        known[slot] = v
    return known


def open_note(note: str | bytes, known_vkeys: Iterable[str | Verifier]) -> OpenedNote:
    """Parse and verify a signed note against the known verifier keys.

    Signatures whose (name, key ID) is unknown are ignored (returned in ``unverified``); a
    known key's signature that fails rejects the note; at least one known key must verify.
    Raises NoteError: "malformed-note", "invalid-signature" or "no-known-signature".
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("malformed-note", "A signed note must be valid UTF-8.") from exc
    if not isinstance(note, str) or not _is_valid_text(note):
        raise NoteError(
            "malformed-note", "A signed note must be UTF-8 with no control characters but newline."
        )
    known = _known_map(known_vkeys)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed-note", "No blank line separates the text from the signatures.")
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs or not sigs.endswith("\n"):
        raise NoteError("malformed-note", "The signature block is empty or lacks a final newline.")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("malformed-note", f"More than {MAX_SIGNATURES} signature lines.")
    text_bytes = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIG_PREFIX):
            raise NoteError("malformed-note", f"Signature line {number} does not start with '\u2014 '.")
        name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
        try:
            _check_name(name)
            raw = _b64decode_strict(b64)
        except (NoteError, ValueError) as exc:
            raise NoteError("malformed-note", f"Signature line {number} is malformed.") from exc
        if not sep or len(raw) < 5:
            raise NoteError("malformed-note", f"Signature line {number} is malformed.")
        sig = NoteSignature(name=name, key_id=raw[:4], signature=raw[4:])
        slot = (name, sig.key_id)
        verifier = known.get(slot)
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if slot in seen:
            continue
        seen.add(slot)
        if not verifier.verify(text_bytes, sig.signature):
            raise NoteError(
                "invalid-signature",
                f"The signature by known key {name!r} ({sig.key_id.hex()}) does not verify.",
            )
        verified.append(sig)
    if not verified:
        raise NoteError("no-known-signature", "The note carries no signature by a known key.")
    return OpenedNote(text=text, verified=tuple(verified), unverified=tuple(unverified))


def verify_note(note: str | bytes, known_vkeys: Iterable[str | Verifier]) -> str:
    """Verify a signed note (see ``open_note``) and return its text (with final newline)."""
    return open_note(note, known_vkeys).text


# ---------------------------------------------------------------------------------------------
# Checkpoints


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint note text ``origin\\nsize\\nbase64(root)\\n[extension lines\\n]``."""
    if not isinstance(origin, str) or not origin or "\n" in origin or not _is_valid_text(origin):
        raise NoteError("malformed-checkpoint", "The origin must be one non-empty line.")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise NoteError("malformed-checkpoint", f"Tree size {size!r} is not a uint64.")
    if not isinstance(root, bytes) or len(root) != ROOT_SIZE:
        raise NoteError("malformed-checkpoint", f"The root hash must be {ROOT_SIZE} bytes.")
    for ext in extensions:
        if not ext or "\n" in ext or not _is_valid_text(ext):
            raise NoteError("malformed-checkpoint", "Extension lines must be non-empty lines.")
    return "".join(f"{line}\n" for line in (origin, str(size), _b64encode(root), *extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (as returned by ``verify_note``); raise NoteError if malformed.

    Requires at least three lines, a non-empty origin, a decimal uint64 size without leading
    zeros, a canonical base64 root of exactly 32 bytes, non-empty extension lines and a final
    newline.
    """
    if not isinstance(text, str) or not text.endswith("\n") or not _is_valid_text(text):
        raise NoteError("malformed-checkpoint", "A checkpoint is newline-terminated text.")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("malformed-checkpoint", "A checkpoint has origin, size and root lines.")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise NoteError("malformed-checkpoint", "The checkpoint origin is empty.")
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise NoteError(
            "malformed-checkpoint",
            f"Tree size {size_text!r} is not a decimal uint64 without leading zeros.",
        )
    try:
        root = _b64decode_strict(root_text)
    except ValueError as exc:
        raise NoteError("malformed-checkpoint", "The root hash is not valid base64.") from exc
    if len(root) != ROOT_SIZE:
        raise NoteError("malformed-checkpoint", f"The root hash is {len(root)} bytes, not {ROOT_SIZE}.")
    if any(not ext for ext in extensions):
        raise NoteError("malformed-checkpoint", "Checkpoint extension lines must be non-empty.")
    return Checkpoint(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def sign_checkpoint(origin: str, size: int, root: bytes, private_key: Ed25519PrivateKey) -> str:
    """A signed checkpoint note; the signing key's name is the origin."""
    return sign_note(format_checkpoint(origin, size, root), origin, private_key)


def verify_checkpoint(
    note: str | bytes, known_vkeys: Iterable[str | Verifier], origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note and parse it.

    If ``origin`` is given the checkpoint's origin must equal it, and a key named after the
    origin must be among the verified signers (so a witness signature alone is not enough).
    """
    opened = open_note(note, known_vkeys)
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None:
        if checkpoint.origin != origin:
            raise NoteError("wrong-origin", f"Checkpoint origin {checkpoint.origin!r} is not {origin!r}.")
        if not any(sig.name == origin for sig in opened.verified):
            raise NoteError("no-known-signature", f"No verified signature by log key {origin!r}.")
    return checkpoint
