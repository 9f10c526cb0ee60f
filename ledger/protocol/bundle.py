"""Offline verification of log records, ``magnet-ledger/bundle/v1`` bundles and whole logs.

Pure Python (no Django, no network): shared by the service's tests, ``magledger
verify-bundle`` and ``magledger verify-log``.

A bundle (served by ``GET /api/v1/batches/{id}/bundle/``) is a JSON object::

    {"format": "magnet-ledger/bundle/v1", "batch": "<id>", "generated_at": "...",
     "log": {"origin": "...", "vkey": "<C2SP verifier key>", "log_key_id": "<hex>"},
     "checkpoint": "<C2SP signed checkpoint note>",
     "records": [{"record": {seq, recorded_at, prev, envelope}, "leaf_hash": "<hex>",
                  "proof": ["<hex>", ...]}, ...],          # ascending seq
     "keys": [{"key_id", "org", "public_key", "registered_seq", "revoked_seq"}, ...],
     "claims": {"method", "batch", "material", "custodian", "composition", "origin"}}

Every hash is lowercase hex; ``proof`` is the RFC 9162 inclusion proof of leaf ``seq`` in
the tree of the checkpoint's size. What the verifier checks, each failure naming the
``seq``, the check, the expected and the actual value:

- ``checkpoint-signature``: the checkpoint is signed by the trusted log key (``--vkey``,
  else the bundle's own key: trust on first use, with a warning) for its origin;
- ``record-shape``, ``order``: four record fields, three envelope fields, ascending seq;
- ``leaf-hash``: SHA-256(0x00 || JCS(record)) equals the leaf hash listed;
- ``signature``, ``key-validity``: the payload's signature verifies under the key its
  ``key_registered`` record (in the bundle, signed by the log key) gives to the payload's
  organisation, registered before the entry and not revoked before it, by seq;
- ``chain``: ``prev`` of seq n+1 is the leaf hash of seq n wherever both are present;
- ``inclusion``: every proof leads from the leaf to the checkpoint's root;
- ``keys``: the key list agrees with the key records;
- ``completeness``, ``custody``, ``figures``: replaying the records rebuilds every batch
  of the pedigree (each is created by a record present, used only by its custodian), and
  the batch's custodian, composition and per-element origin split (the proportional
  method of ``ledger.origin``) equal the figures the bundle claims.

What offline checking cannot show: a record the bundle leaves out entirely (a revocation,
say) is invisible unless something present depends on it; ``verify-log`` walks the whole
log for that.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.origin import METHOD, ORIGINS, Contribution, OriginSplit
from ledger.protocol.canonical import MAX_SAFE_INTEGER, ProtocolError, canonical_bytes
from ledger.protocol.envelope import ENVELOPE_FIELDS, RECORD_FIELDS, b64url_decode, record_bytes
from ledger.protocol.hashing import ZERO_HASH_HEX, node_hash
from ledger.protocol.keys import key_id as compute_key_id
from ledger.protocol.keys import public_key_raw
from ledger.protocol.merkle import (
    CompactRange,
    ProofError,
    root_from_inclusion_proof,
    verify_consistency,
)
from ledger.protocol.note import (
    Checkpoint,
    NoteError,
    Verifier,
    parse_checkpoint,
    parse_vkey,
    verify_checkpoint,
)

BUNDLE_FORMAT = "magnet-ledger/bundle/v1"
KEY_RECORD_TYPES = frozenset({"key_registered", "key_revoked"})
# Origin shares are rounded to 9 decimals by ledger.origin; anything closer is equal.
FIGURE_TOLERANCE = 1e-9

_HEX64 = re.compile(r"[0-9a-f]{64}")
# Strings that JCS writes as they are (no escapes), so record_bytes can join them directly.
_PLAIN_ASCII = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")
_B64URL_SIG = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
# recorded_at, prev, key_id and signature of a record, newline-joined: one match instead of four.
_RECORD_STRINGS = re.compile(
    r"[\x20-\x21\x23-\x5b\x5d-\x7e]*\n[0-9a-f]{64}\n[0-9a-f]{64}\n[A-Za-z0-9_-]{85}[AQgw]"
)


class BundleUnreadable(ProtocolError):
    """A document that cannot be checked at all: not JSON, not a v1 bundle, missing parts."""

    def __init__(self, detail: str) -> None:
        super().__init__("unreadable-bundle", detail)


@dataclass(frozen=True)
class Failure:
    """One failed check: where (``seq``, None for the bundle as a whole), which check,
    what was expected and what was found."""

    check: str
    seq: int | None
    expected: str
    actual: str
    scope: str = "bundle"  # what seq None refers to: the bundle, or the log as a whole

    def __str__(self) -> str:
        where = self.scope if self.seq is None else f"seq {self.seq}"
        return f"{where}: {self.check}: expected {self.expected}; got {self.actual}"


@dataclass
class Report:
    """The outcome of a verification: failures (empty = verified), warnings, and what was
    checked and recomputed."""

    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    records: int = 0
    checkpoint: Checkpoint | None = None
    batch: str | None = None
    figures: dict[str, Any] | None = None
    scope: str = "bundle"

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, check: str, seq: int | None, expected: str, actual: str) -> None:
        self.failures.append(Failure(check, seq, expected, actual, self.scope))


def _short(hex_text: str) -> str:
    return hex_text[:16] + "…" if len(hex_text) > 16 else hex_text


# -- canonical bytes, fast ---------------------------------------------------------------------


def _plain_json(value: Any) -> bool:
    """True when json.dumps(sort_keys, compact, ensure_ascii=False) is exactly JCS for
    ``value``: no floats (the two differ on 1.0, 1e-7...), integers within I-JSON's range,
    string member names in ASCII (so code-point order is UTF-16 order). Strings need no
    check: both escape exactly '"', '\\' and the control characters, in the same forms.
    Iterative, with scalars checked in place: this runs once per record verified."""
    limit = MAX_SAFE_INTEGER
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            items: Iterable[Any] = node.values()
            for key in node:
                if type(key) is not str or not key.isascii():
                    return False
        elif type(node) is list:
            items = node
        else:
            items = (node,)
        for item in items:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if not -limit <= item <= limit:
                    return False
            elif kind is dict or kind is list:
                stack.append(item)
            else:
                return False
    return True


# Built once: json.dumps with these options would build a new encoder on every call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fast_canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of ``value``: the C JSON encoder where it provably agrees with JCS,
    ``canonical.canonical_bytes`` otherwise (same result, several times slower)."""
    if _plain_json(value):
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference implementation refuse it precisely
    return canonical_bytes(value)


@dataclass(slots=True)
class ParsedRecord:
    """A record checked for shape, with its canonical bytes and leaf hash."""

    seq: int
    record: dict[str, Any]
    payload: dict[str, Any]
    payload_bytes: bytes
    leaf: bytes

    @property
    def key_id(self) -> str:
        return str(self.record["envelope"]["key_id"])

    @property
    def type(self) -> str:
        return str(self.payload.get("type", ""))


def parse_record(record: Any) -> ParsedRecord:
    """Check a record's shape and compute JCS(payload) and its leaf hash.

    Raises ProtocolError("invalid-record") naming what is wrong. The record's own bytes
    are built around the payload's as the service builds them (``record_bytes``), which is
    JCS because every other member is an integer or a string without escapes.
    """
    if type(record) is not dict or record.keys() != RECORD_FIELDS:
        raise ProtocolError("invalid-record", "a record has exactly seq, recorded_at, prev and envelope")
    seq, stamp, prev, envelope = record["seq"], record["recorded_at"], record["prev"], record["envelope"]
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise ProtocolError("invalid-record", "seq must be a non-negative integer")
    if type(envelope) is not dict or envelope.keys() != ENVELOPE_FIELDS:
        raise ProtocolError("invalid-record", "an envelope has exactly payload, key_id and signature")
    payload, kid, signature = envelope["payload"], envelope["key_id"], envelope["signature"]
    if not isinstance(payload, dict):
        raise ProtocolError("invalid-record", "payload must be an object")
    strings = (stamp, prev, kid, signature)
    if not all(isinstance(v, str) for v in strings) or not _RECORD_STRINGS.fullmatch("\n".join(strings)):
        for value, pattern, what in (
            (stamp, _PLAIN_ASCII, "recorded_at must be an RFC 3339 time"),
            (prev, _HEX64, "prev must be 64 lowercase hex digits"),
            (kid, _HEX64, "key_id must be 64 lowercase hex digits"),
            (signature, _B64URL_SIG, "signature must be 64 bytes of canonical base64url"),
        ):
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise ProtocolError("invalid-record", what)
    payload_bytes = fast_canonical_bytes(payload)
    data = record_bytes(seq, stamp, prev, kid, payload_bytes, signature)
    return ParsedRecord(seq, record, payload, payload_bytes, hashlib.sha256(b"\x00" + data).digest())


# -- signatures and key validity ---------------------------------------------------------------


@dataclass
class _Key:
    key_id: str
    org: str
    public_key: Ed25519PublicKey | None  # None: the registered key was refused
    registered_seq: int
    revoked_seq: int | None = None


class RecordChecker:
    """Checks records in ascending seq order: signatures, key validity at each seq, and the
    chain link to the previous record when it is the one just before.

    ``log_key`` is the trusted log public key: it signs the ``key_registered`` and
    ``key_revoked`` records, from which the checker learns every other key. Call
    ``learn_keys`` first when records are checked in a set that holds an entry before its
    key's records could be reached (a bundle); a full log walk learns them as it goes.
    """

    def __init__(self, log_key: Ed25519PublicKey, report: Report) -> None:
        self.log_key = log_key
        self.log_key_id = compute_key_id(public_key_raw(log_key))
        self.report = report
        self.keys: dict[str, _Key] = {}
        self.previous: tuple[int, bytes] | None = None

    def learn_keys(self, records: Iterable[ParsedRecord]) -> None:
        """Register every key (and revocation) the log-signed key records announce."""
        for rec in records:
            if rec.key_id == self.log_key_id and rec.type in KEY_RECORD_TYPES:
                self._learn(rec)

    def _learn(self, rec: ParsedRecord) -> None:
        p = rec.payload
        kid = p.get("key_id")
        if not isinstance(kid, str):
            return
        if rec.type == "key_registered" and kid not in self.keys:
            public: Ed25519PublicKey | None = None
            try:
                raw = b64url_decode(str(p.get("public_key", "")))
                if compute_key_id(raw) != kid:
                    raise ProtocolError("key-rejected", "the key_id is not the SHA-256 of the public key")
                # Not keys.public_key_from_bytes: the service refused weak keys when it
                # registered this one, and the registration is its signed statement, so the
                # verifier's trust rests on the log key either way; the ~10 ms subgroup check
                # per key would dominate the verification of a typical bundle.
                public = Ed25519PublicKey.from_public_bytes(raw)
            except (ProtocolError, ValueError) as exc:
                self.report.fail("key-validity", rec.seq, f"a usable Ed25519 key {_short(kid)}", str(exc))
            self.keys[kid] = _Key(kid, str(p.get("org", "")), public, rec.seq)
        elif rec.type == "key_revoked" and kid in self.keys and self.keys[kid].revoked_seq is None:
            self.keys[kid].revoked_seq = rec.seq

    def check(self, rec: ParsedRecord) -> None:
        """Check one record's signature, key validity and chain link; records failures."""
        fail = self.report.fail
        seq, kid = rec.seq, rec.key_id
        # parse_record checked the canonical base64url form, so the plain decoder is exact.
        signature = base64.urlsafe_b64decode(rec.record["envelope"]["signature"] + "==")
        if kid == self.log_key_id:
            if rec.type not in KEY_RECORD_TYPES:
                fail("key-validity", seq, "the log key to sign only key records", f"it signed a {rec.type!r}")
            public: Ed25519PublicKey | None = self.log_key
        else:
            key = self.keys.get(kid)
            public = None if key is None else key.public_key
            if key is None:
                fail("key-validity", seq, f"a key_registered record for key {_short(kid)}", "none")
            else:
                org = rec.payload.get("org")
                if key.registered_seq >= seq:
                    fail(
                        "key-validity",
                        seq,
                        f"key {_short(kid)} registered before seq {seq}",
                        f"registered at seq {key.registered_seq}",
                    )
                if key.revoked_seq is not None and key.revoked_seq < seq:
                    fail(
                        "key-validity",
                        seq,
                        f"key {_short(kid)} not revoked before seq {seq}",
                        f"revoked at seq {key.revoked_seq}",
                    )
                if org != key.org:
                    fail(
                        "key-validity",
                        seq,
                        f"a key of the payload's organisation {org!r}",
                        f"key {_short(kid)} belongs to {key.org!r}",
                    )
        if public is not None:
            try:
                public.verify(signature, rec.payload_bytes)
            except InvalidSignature:
                signer = "the log key" if kid == self.log_key_id else f"key {_short(kid)}"
                fail(
                    "signature",
                    seq,
                    f"an Ed25519 signature by {signer} over JCS(payload)",
                    "a signature that does not verify",
                )
        if kid == self.log_key_id and rec.type in KEY_RECORD_TYPES:
            self._learn(rec)  # a full walk meets key records in order; learning twice is a no-op

        expected_prev = ZERO_HASH_HEX if seq == 0 else None
        if self.previous is not None and self.previous[0] == seq - 1:
            expected_prev = self.previous[1].hex()
        prev = rec.record["prev"]
        if expected_prev is not None and prev != expected_prev:
            what = "64 zeros (the first record)" if seq == 0 else f"the leaf hash of seq {seq - 1}"
            fail("chain", seq, f"prev = {what} {_short(expected_prev)}", f"prev {_short(prev)}")
        self.previous = (seq, rec.leaf)


# -- inclusion proofs against one root ---------------------------------------------------------


def _decode(element: Any) -> bytes:
    """One proof hash: exactly 64 lowercase hex digits. Every hash a remembered proof holds
    went through here (or equals one that did), so comparing proofs as text is exact."""
    if type(element) is not str or not _HEX64.fullmatch(element):
        raise ProofError("proof hashes must be 64 lowercase hex digits each")
    return bytes.fromhex(element)


class InclusionChecker:
    """Verifies many inclusion proofs against one tree size and root.

    Accepts and refuses exactly what ``merkle.verify_inclusion`` does, but remembers, for
    each perfect node a successful proof passed through, its hash and that proof: the path
    from a node to the root is unique in a tree of a given size, so when the next leaf's
    climb reaches a known node with the same hash and the rest of its proof equals the
    remembered rest, it is proven without hashing further. A bundle of neighbouring
    records costs a few hashes per record instead of log2(size). Proofs are given as the
    hex strings of the bundle and decoded only as far as the climb goes.
    """

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.root = root
        self.known: dict[tuple[int, int], tuple[bytes, list[str]]] = {}

    def verify(self, leaf: bytes, index: int, proof: list[str]) -> None:
        """Raise ProofError unless ``proof`` (lowercase hex hashes) proves ``leaf`` at ``index``."""
        size = self.size
        if not 0 <= index < size:
            raise ProofError(f"seq {index} is not below the checkpoint's tree size {size}")
        inner = (index ^ (size - 1)).bit_length()
        border = (index >> inner).bit_count()
        if len(proof) != inner + border:
            raise ProofError(
                f"an inclusion proof for {index} in {size} has {inner + border} hashes, not {len(proof)}"
            )
        known = self.known
        learned: list[tuple[tuple[int, int], bytes]] = []
        h = leaf
        for level in range(inner):
            position = (level, index >> level)
            seen = known.get(position)
            if seen is not None:
                if seen[0] == h and proof[level:] == seen[1][level:]:
                    for below, value in learned:  # proven too, through the known node
                        known[below] = (value, proof)
                    return
                break  # refuted: the full computation below names the root it leads to
            learned.append((position, h))
            sibling = _decode(proof[level])
            h = node_hash(sibling, h) if (index >> level) & 1 else node_hash(h, sibling)
        else:
            for element in proof[inner:]:
                h = node_hash(_decode(element), h)
            if h == self.root:
                for position, value in learned:
                    known[position] = (value, proof)
                return
        calculated = root_from_inclusion_proof(leaf, index, size, [_decode(e) for e in proof])
        raise ProofError(f"the proof leads to root {calculated.hex()}")


# -- replaying the pedigree --------------------------------------------------------------------


@dataclass
class _Batch:
    custodian: str
    composition: dict[str, int] | None
    origin: OriginSplit | None
    in_transit_to: str | None = None


class _Replay:
    """Rebuilds custody, composition and origin split of every batch from the records,
    with the service's own recycled-content method (ledger.origin)."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.batches: dict[str, _Batch] = {}

    def _get(self, batch_id: Any, seq: int) -> _Batch | None:
        batch = self.batches.get(batch_id) if isinstance(batch_id, str) else None
        if batch is None:
            self.report.fail(
                "completeness",
                seq,
                f"the record that created batch {batch_id!r} (an intake or transform)",
                "none in the bundle before this entry",
            )
        return batch

    def _held(self, batch_id: Any, org: Any, seq: int) -> _Batch | None:
        batch = self._get(batch_id, seq)
        if batch is None:
            return None
        if batch.custodian != org or batch.in_transit_to is not None:
            state = (
                f"in transit to {batch.in_transit_to!r}"
                if batch.in_transit_to
                else f"held by {batch.custodian!r}"
            )
            self.report.fail("custody", seq, f"batch {batch_id!r} held by {org!r}", state)
        return batch

    def _create(self, batch_id: Any, seq: int, batch: _Batch) -> None:
        if not isinstance(batch_id, str):
            return
        if batch_id in self.batches:
            self.report.fail("completeness", seq, f"batch {batch_id!r} created once", "created a second time")
        self.batches[batch_id] = batch

    def apply(self, rec: ParsedRecord) -> None:
        """Apply one entry (in seq order); unknown entry types change nothing here."""
        p, seq = rec.payload, rec.seq
        org, kind = p.get("org"), rec.type
        try:
            if kind == "intake":
                declared = p.get("origin")
                start = METHOD.intake(declared) if declared in ORIGINS else None
                self._create(p.get("batch"), seq, _Batch(str(org), p.get("composition"), start))
            elif kind == "transform":
                inputs = [(item, self._held(item.get("batch"), org, seq)) for item in p.get("inputs", [])]
                blended: OriginSplit | None = None
                if inputs and all(b is not None and b.origin is not None for _, b in inputs):
                    blended = METHOD.blend(
                        [
                            Contribution(item["mass_g"], b.composition, b.origin)
                            for item, b in inputs
                            if b and b.origin
                        ]
                    )
                for out in p.get("outputs", []):
                    self._create(out.get("batch"), seq, _Batch(str(org), out.get("composition"), blended))
            elif kind == "ship":
                batch = self._held(p.get("batch"), org, seq)
                if batch is not None:
                    batch.in_transit_to = p.get("to_org")
            elif kind == "receive":
                batch = self._get(p.get("batch"), seq)
                if batch is not None:
                    if batch.in_transit_to != org:
                        state = (
                            f"in transit to {batch.in_transit_to!r}" if batch.in_transit_to else "not shipped"
                        )
                        self.report.fail(
                            "custody", seq, f"batch {p.get('batch')!r} shipped to {org!r}", state
                        )
                    batch.custodian, batch.in_transit_to = str(org), None
            elif kind == "assay":
                batch = self._get(p.get("batch"), seq)
                if batch is not None:
                    batch.composition = p.get("composition")
            elif kind == "write_off":
                self._held(p.get("batch"), org, seq)
        except (KeyError, TypeError, AttributeError) as exc:
            self.report.fail(
                "record-shape", seq, f"a well-formed {kind} payload", f"{type(exc).__name__}: {exc}"
            )


def _compare_shares(path: str, recomputed: Any, claimed: Any, report: Report) -> None:
    if isinstance(recomputed, dict) and isinstance(claimed, dict):
        for key in sorted(set(recomputed) | set(claimed)):
            _compare_shares(f"{path}.{key}", recomputed.get(key), claimed.get(key), report)
        return
    numbers = (int, float)
    if (
        isinstance(recomputed, numbers)
        and isinstance(claimed, numbers)
        and not isinstance(recomputed, bool)
        and not isinstance(claimed, bool)
    ):
        if abs(recomputed - claimed) <= FIGURE_TOLERANCE:
            return
    elif recomputed == claimed:
        return
    report.fail(
        "figures", None, f"{path} = {recomputed!r} (recomputed from the records)", f"{claimed!r} claimed"
    )


# -- the bundle --------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_bundle(data: bytes | str) -> dict[str, Any]:
    """Parse a bundle file strictly (UTF-8 JSON, no duplicate members); BundleUnreadable if
    it is not a ``magnet-ledger/bundle/v1`` document with every part present."""
    # The C parser without a duplicate-member hook: what is verified is the parsed value
    # (its canonical bytes must hash into the log), so a duplicate member cannot smuggle
    # anything past the checks, and the hook would cost a Python call per object.
    try:
        doc = json.loads(data, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleUnreadable(f"not a JSON document: {exc}") from exc
    if not isinstance(doc, dict):
        raise BundleUnreadable("a bundle is a JSON object")
    if doc.get("format") != BUNDLE_FORMAT:
        raise BundleUnreadable(
            f"unsupported format {doc.get('format')!r}; this verifier reads {BUNDLE_FORMAT!r}"
        )
    wanted = {"batch": str, "log": dict, "checkpoint": str, "records": list, "keys": list, "claims": dict}
    for name, kind in wanted.items():
        if not isinstance(doc.get(name), kind):
            raise BundleUnreadable(f"the bundle has no {name!r} ({kind.__name__})")
    if not isinstance(doc["log"].get("vkey"), str) or not isinstance(doc["log"].get("origin"), str):
        raise BundleUnreadable("the bundle's log section has no vkey and origin")
    return doc


def trust_anchor(
    bundle_vkey: str, trusted_vkey: str | None, report: Report, source: str = "the bundle itself"
) -> Verifier:
    """The log key to trust: the user's, else the one ``source`` names, with a warning.
    Raises BundleUnreadable when the key given cannot be parsed."""
    chosen = trusted_vkey or bundle_vkey
    try:
        verifier = parse_vkey(chosen.strip())
    except NoteError as exc:
        which = "--vkey" if trusted_vkey else f"the vkey of {source}"
        raise BundleUnreadable(f"{which} is not a verifier key: {exc.detail}") from exc
    if trusted_vkey is None:
        report.warnings.append(
            f"trust on first use: the log key was taken from {source}, so a forger could have "
            "replaced both; pass --vkey with the key the operator publishes (GET /api/v1/log/)"
        )
    elif bundle_vkey.strip() != chosen.strip():
        report.warnings.append(f"{source} names another log key than the one trusted; only that one is")
    return verifier


def verify_checkpoint_note(note: str, verifier: Verifier, report: Report) -> Checkpoint | None:
    """Verify the note's signature by the trusted key; on failure record it and return the
    unverified body (so the proofs can still be checked and reported), or None."""
    try:
        checkpoint = verify_checkpoint(note, [verifier], origin=verifier.name)
    except NoteError as exc:
        report.fail(
            "checkpoint-signature",
            None,
            f"a checkpoint signed by log key {verifier.name}+{verifier.key_id.hex()}",
            f"{exc.code}: {exc.detail}",
        )
        text, _, _ = note.rpartition("\n\n")
        try:
            return parse_checkpoint(text + "\n")
        except NoteError:
            return None
    return checkpoint


def verify_bundle(doc: dict[str, Any], trusted_vkey: str | None = None) -> Report:
    """Check a loaded bundle (``load_bundle``) offline; see the module docstring.

    ``trusted_vkey`` is the log's C2SP verifier key as the user obtained it; without it
    the bundle's own key is used and a trust-on-first-use warning is added.
    """
    report = Report(batch=doc["batch"])
    verifier = trust_anchor(doc["log"]["vkey"], trusted_vkey, report)
    if doc["log"]["origin"] != verifier.name:
        report.fail(
            "checkpoint-signature", None, f"the log origin {verifier.name!r}", f"{doc['log']['origin']!r}"
        )
    checkpoint = verify_checkpoint_note(doc["checkpoint"], verifier, report)
    report.checkpoint = checkpoint
    inclusion = None if checkpoint is None else InclusionChecker(checkpoint.size, checkpoint.root)

    parsed: list[tuple[ParsedRecord, dict[str, Any]]] = []
    last_seq = -1
    for i, item in enumerate(doc["records"]):
        record = item.get("record") if isinstance(item, dict) else None
        seq = record.get("seq") if isinstance(record, dict) else None
        where = seq if type(seq) is int else None
        try:
            rec = parse_record(record)
        except ProtocolError as exc:
            report.fail("record-shape", where, f"records[{i}] a well-formed record", exc.detail)
            continue
        if rec.seq <= last_seq:
            report.fail(
                "order", rec.seq, f"records in ascending seq order, after seq {last_seq}", f"seq {rec.seq}"
            )
        last_seq = max(last_seq, rec.seq)
        parsed.append((rec, item))
    report.records = len(parsed)
    parsed.sort(key=lambda pair: pair[0].seq)

    checker = RecordChecker(verifier.public_key, report)
    records = [rec for rec, _ in parsed]
    checker.learn_keys(records)
    _check_key_list(doc["keys"], checker, {rec.seq: rec for rec in records}, report)
    replay = _Replay(report)
    for rec, item in parsed:
        listed = item.get("leaf_hash")
        if listed != rec.leaf.hex():
            report.fail(
                "leaf-hash",
                rec.seq,
                f"leaf hash {_short(str(listed))} as listed",
                f"the record hashes to {_short(rec.leaf.hex())}: it is not the record that was logged",
            )
        checker.check(rec)
        if inclusion is not None:
            try:
                proof = item.get("proof")
                if not isinstance(proof, list):
                    raise ProofError("the record has no proof list")
                inclusion.verify(rec.leaf, rec.seq, proof)
            except ProofError as exc:
                report.fail(
                    "inclusion",
                    rec.seq,
                    f"a proof to the checkpoint root {_short(checkpoint.root.hex())}"
                    if checkpoint
                    else "a proof",
                    str(exc),
                )
        replay.apply(rec)

    _check_claims(doc, replay, report)
    return report


def _check_key_list(
    keys: list[Any], checker: RecordChecker, by_seq: dict[int, ParsedRecord], report: Report
) -> None:
    for entry in keys:
        if not isinstance(entry, dict) or not isinstance(entry.get("key_id"), str):
            report.fail("keys", None, "key entries with a key_id", repr(entry)[:80])
            continue
        kid = entry["key_id"]
        known = checker.keys.get(kid)
        reg = entry.get("registered_seq")
        if known is None or known.registered_seq != reg:
            found = "none" if known is None else f"seq {known.registered_seq}"
            report.fail(
                "keys",
                reg if isinstance(reg, int) else None,
                f"the key_registered record of key {_short(kid)} at seq {reg}",
                f"{found} in the bundle",
            )
            continue
        revoked = entry.get("revoked_seq")
        if revoked != known.revoked_seq:
            found = "none" if known.revoked_seq is None else f"seq {known.revoked_seq}"
            report.fail(
                "keys",
                revoked if isinstance(revoked, int) else None,
                f"the key_revoked record of key {_short(kid)} at seq {revoked}",
                f"{found} in the bundle",
            )
        if entry.get("org") != known.org:
            report.fail(
                "keys", reg, f"key {_short(kid)} of {known.org!r} as its record says", f"{entry.get('org')!r}"
            )


def _check_claims(doc: dict[str, Any], replay: _Replay, report: Report) -> None:
    claims = doc["claims"]
    batch_id = doc["batch"]
    if claims.get("batch") != batch_id:
        report.fail(
            "figures", None, f"claims about batch {batch_id!r}", f"claims about {claims.get('batch')!r}"
        )
    if claims.get("method", METHOD.name) != METHOD.name:
        report.warnings.append(
            f"figures computed with method {claims.get('method')!r}; recomputed with {METHOD.name!r}"
        )
    batch = replay.batches.get(batch_id)
    if batch is None:
        report.fail("completeness", None, f"the record that created batch {batch_id!r}", "none in the bundle")
        return
    report.figures = {"custodian": batch.custodian, "composition": batch.composition, "origin": batch.origin}
    if claims.get("custodian") != batch.custodian:
        report.fail(
            "custody",
            None,
            f"custodian {batch.custodian!r} (from the records)",
            f"{claims.get('custodian')!r} claimed",
        )
    if claims.get("composition") != batch.composition:
        report.fail(
            "figures",
            None,
            f"composition {batch.composition!r} (from the records)",
            f"{claims.get('composition')!r} claimed",
        )
    _compare_shares("origin", batch.origin, claims.get("origin"), report)


# -- a whole log -------------------------------------------------------------------------------


class LogAudit:
    """Checks a whole log fed record by record in seq order (``magledger verify-log``):
    gapless seq, canonical bytes, leaf hashes as served, chain, signatures and key validity,
    then the root against the checkpoint and consistency with a previously saved one."""

    def __init__(self, verifier: Verifier, report: Report) -> None:
        self.report = report
        report.scope = "log"
        self.checker = RecordChecker(verifier.public_key, report)
        self.tree = CompactRange()
        self.roots: dict[int, bytes] = {}  # size -> root, for the sizes asked in watch_size

    def watch_size(self, size: int) -> None:
        """Remember the root at ``size`` when the walk passes it (a saved checkpoint's)."""
        self.roots.setdefault(size, b"")

    def add(self, record: Any, served_leaf_hash: str | None = None) -> None:
        """Check the next record, which the caller has made sure is seq ``tree.size``. A
        malformed record is a failure and takes its place in the tree as 32 zero bytes
        (so the root check fails too, and later records keep their positions)."""
        seq = self.tree.size
        try:
            rec = parse_record(record)
        except ProtocolError as exc:
            self.report.fail("record-shape", seq, "a well-formed record", exc.detail)
            self.tree.append(bytes(32))
            return
        if rec.seq != seq:
            self.report.fail("order", seq, f"seq {seq} (gapless)", f"a record that says seq {rec.seq}")
        if served_leaf_hash is not None and served_leaf_hash != rec.leaf.hex():
            self.report.fail(
                "leaf-hash",
                seq,
                f"leaf hash {_short(served_leaf_hash)} as served",
                f"the record hashes to {_short(rec.leaf.hex())}",
            )
        self.checker.check(rec)
        self.tree.append(rec.leaf)
        if self.tree.size in self.roots:
            self.roots[self.tree.size] = self.tree.root()
        self.report.records += 1

    def check_root(self, checkpoint: Checkpoint) -> None:
        """The records walked must be exactly the checkpoint's tree."""
        if self.tree.size != checkpoint.size:
            self.report.fail(
                "root", None, f"{checkpoint.size} records (the checkpoint's size)", f"{self.tree.size}"
            )
            return
        root = self.tree.root()
        if root != checkpoint.root:
            self.report.fail(
                "root",
                None,
                f"checkpoint root {checkpoint.root.hex()}",
                f"{root.hex()} recomputed from the {self.tree.size} records served",
            )

    def check_consistency(
        self, size: int, saved_root: bytes, proof: Sequence[bytes], checkpoint: Checkpoint
    ) -> None:
        """The checkpoint must extend the one saved from a previous run (``size``,
        ``saved_root``): by the server's consistency proof, and by the root of the first
        ``size`` records as walked now (call ``watch_size(size)`` before the walk)."""
        if size > checkpoint.size:
            self.report.fail(
                "consistency",
                None,
                f"a log of at least {size} records, as seen before",
                f"a checkpoint of {checkpoint.size}: the log shrank",
            )
            return
        walked = self.roots.get(size)
        if walked and walked != saved_root:
            self.report.fail(
                "consistency",
                size - 1,
                f"the first {size} records to hash to the saved root {saved_root.hex()}",
                f"{walked.hex()}: the log was rewritten since the last run",
            )
        try:
            verify_consistency(size, checkpoint.size, saved_root, checkpoint.root, proof)
        except ProofError as exc:
            self.report.fail(
                "consistency",
                None,
                f"a proof that checkpoint {checkpoint.size} extends the saved checkpoint {size}",
                exc.detail,
            )
