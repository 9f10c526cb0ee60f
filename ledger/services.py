"""Business rules of the ledger: submitting entries, registering and revoking keys.

A submission is checked in two stages. Form and signatures need no shared state and are
checked before any lock is taken; the rules that read the ledger's state (custody, transit,
remaining mass, idempotency) run under the log lock in the same transaction that appends
the records, so a submission is written whole or not at all.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Facility, Organisation, Role, SigningKey
from checks.services import apply_attest, record_pending
from ledger.errors import EntryRejected
from ledger.log import Appendable, build_records, lock_log, log_head
from ledger.logkey import log_key_id, log_private_key
from ledger.models import (
    Access,
    AccessVia,
    Batch,
    BatchStatus,
    EntryBatch,
    EntryType,
    LinkRole,
    LogRecord,
)
from ledger.models import Shipment as ShipmentModel
from ledger.origin import METHOD, Contribution
from ledger.payloads import parse_occurred_at, validate_payload
from ledger.protocol.canonical import ProtocolError, canonical_bytes
from ledger.protocol.envelope import (
    CheckedEnvelope,
    b64url_decode,
    b64url_encode,
    check_envelope_shape,
    verify_signature,
)
from ledger.protocol.keys import key_id as compute_key_id
from ledger.protocol.keys import public_key_from_bytes
from ledger.transparency import publish_soon


@dataclass
class Submission:
    """The outcome of submit_entries: one record per envelope, in request order."""

    records: list[LogRecord]
    replayed: list[bool]

    @property
    def created_any(self) -> bool:
        return not all(self.replayed)


@dataclass
class _Entry:
    index: int | None  # position in a bulk request; None for a single envelope
    pointer: str
    checked: CheckedEnvelope
    digest: str = ""
    seq: int = -1

    @property
    def payload(self) -> dict[str, Any]:
        return self.checked.payload

    def reject(self, code: str, detail: str, pointer: str = "") -> EntryRejected:
        return EntryRejected(code, detail, self.pointer + pointer, self.index)


def submit_entries(envelopes: Sequence[Any], *, organisation: Organisation, bulk: bool = False) -> Submission:
    """Check and append signed envelopes submitted by ``organisation``, all or nothing.

    Raises EntryRejected naming the rule, the field (JSON Pointer) and, for a bulk, the
    index of the first failing envelope. An envelope whose payload id is already in the
    log with the same payload returns the existing record (idempotent retry).
    """
    facilities = {f.code: f for f in Facility.objects.filter(organisation=organisation)}
    entries = [
        _check_form(i if bulk else None, envelope, organisation, facilities, f"/entries/{i}" if bulk else "")
        for i, envelope in enumerate(envelopes)
    ]
    # A retry of something already recorded gets its receipt back even if the key has been
    # revoked since: the content was checked when it was recorded (DESIGN: same id, same
    # content -> same receipt). Everything else is checked now.
    recorded = _recorded_digests(entries)
    _check_signatures([e for e in entries if recorded.get(e.payload["id"]) != e.digest], organisation)
    unique = _dedupe_within_request(entries)

    with transaction.atomic():
        lock_log()
        existing = _existing_records(unique)
        new = [e for e in unique if e.payload["id"] not in existing]
        _recheck_keys_still_valid(new)
        next_seq, prev = log_head()
        for offset, entry in enumerate(new):
            entry.seq = next_seq + offset
        work = _UnitOfWork(organisation, facilities, new)
        for entry in new:
            APPLY[entry.payload["type"]](work, entry)
        items = [
            Appendable(
                entry_id=e.payload["id"],
                entry_type=e.payload["type"],
                organisation_id=organisation.pk,
                key_id=e.checked.key_id,
                signature=e.checked.signature,
                payload_bytes=e.checked.payload_bytes,
            )
            for e in new
        ]
        records = build_records(items, next_seq, prev, timezone.now())
        LogRecord.objects.bulk_create(records)
        work.flush()
        record_pending(records)  # the soft-rule checks, enqueued on commit (checks app)
        publish_soon()  # a checkpoint right after commit, in the embedded mode only

    by_id = {str(r.entry_id): r for r in records} | existing
    return Submission(
        records=[by_id[e.payload["id"]] for e in entries],
        replayed=[e.payload["id"] in existing for e in entries],
    )


def _check_form(
    index: int | None,
    envelope: Any,
    organisation: Organisation,
    facilities: dict[str, Facility],
    prefix: str,
) -> _Entry:
    try:
        checked = check_envelope_shape(envelope)
    except ProtocolError as exc:
        raise EntryRejected(exc.code, exc.detail, prefix + exc.pointer, index) from None
    entry = _Entry(index, prefix, checked)
    try:
        validate_payload(checked.payload)
    except EntryRejected as exc:
        raise exc.at(index, prefix) from None
    payload = checked.payload
    if payload["org"] != organisation.slug:
        raise entry.reject(
            "wrong-organisation",
            f"The payload is for organisation {payload['org']!r} but your token belongs to "
            f"{organisation.slug!r}.",
            "/payload/org",
        )
    if payload["facility"] not in facilities:
        raise entry.reject(
            "unknown-facility",
            f"{organisation.slug!r} has no facility {payload['facility']!r}; "
            f"known: {', '.join(sorted(facilities)) or 'none'}.",
            "/payload/facility",
        )
    skew = parse_occurred_at(payload["occurred_at"]) - timezone.now()
    if skew.total_seconds() > settings.LEDGER_MAX_CLOCK_SKEW_SECONDS:
        raise entry.reject("invalid-payload", "occurred_at lies in the future.", "/payload/occurred_at")
    entry.digest = hashlib.sha256(checked.payload_bytes).hexdigest()
    return entry


def _recorded_digests(entries: list[_Entry]) -> dict[str, str]:
    """payload id -> payload digest of the entries of this request already in the log."""
    rows = LogRecord.objects.filter(entry_id__in=[e.payload["id"] for e in entries])
    return {str(entry_id): digest for entry_id, digest in rows.values_list("entry_id", "payload_digest")}


def _check_signatures(entries: list[_Entry], organisation: Organisation) -> None:
    wanted = {e.checked.key_id for e in entries}
    keys = {k.key_id: k for k in SigningKey.objects.filter(key_id__in=wanted)}
    loaded: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        kid = entry.checked.key_id
        key = keys.get(kid)
        if key is None or key.organisation_id != organisation.pk:
            raise entry.reject(
                "unknown-key",
                f"No key {kid[:16]}… is registered for {organisation.slug!r}.",
                "/key_id",
            )
        if key.revoked_seq is not None:
            raise entry.reject(
                "key-revoked", f"Key {kid[:16]}… was revoked at log seq {key.revoked_seq}.", "/key_id"
            )
        if kid not in loaded:
            # Registration already refused weak keys; loading the raw bytes is enough here.
            loaded[kid] = Ed25519PublicKey.from_public_bytes(b64url_decode(key.public_key))
        if not verify_signature(entry.checked, loaded[kid]):
            raise entry.reject(
                "bad-signature",
                "The signature does not verify over the RFC 8785 bytes of the payload "
                f"under key {kid[:16]}….",
                "/signature",
            )


def _dedupe_within_request(entries: list[_Entry]) -> list[_Entry]:
    seen: dict[str, _Entry] = {}
    unique = []
    for entry in entries:
        earlier = seen.get(entry.payload["id"])
        if earlier is None:
            seen[entry.payload["id"]] = entry
            unique.append(entry)
        elif earlier.digest != entry.digest:
            raise entry.reject(
                "id-conflict",
                f"Payload id {entry.payload['id']} is used by entry {earlier.index} of this "
                "request with different content.",
                "/payload/id",
            )
    return unique


def _existing_records(entries: list[_Entry]) -> dict[str, LogRecord]:
    if not entries:
        return {}
    found = {
        str(r.entry_id): r for r in LogRecord.objects.filter(entry_id__in=[e.payload["id"] for e in entries])
    }
    for entry in entries:
        record = found.get(entry.payload["id"])
        if record is not None and record.payload_digest != entry.digest:
            raise entry.reject(
                "id-conflict",
                f"Payload id {entry.payload['id']} was recorded at seq {record.seq} with different content.",
                "/payload/id",
            )
    return found


def _recheck_keys_still_valid(entries: list[_Entry]) -> None:
    used = {e.checked.key_id for e in entries}
    revoked = dict(
        SigningKey.objects.filter(key_id__in=used, revoked_seq__isnull=False).values_list(
            "key_id", "revoked_seq"
        )
    )
    for entry in entries:
        if entry.checked.key_id in revoked:
            raise entry.reject(
                "key-revoked",
                f"Key {entry.checked.key_id[:16]}… was revoked at log seq {revoked[entry.checked.key_id]}.",
                "/key_id",
            )


def _referenced_batches(payload: dict[str, Any]) -> list[str]:
    if payload["type"] == EntryType.TRANSFORM:
        return [i["batch"] for i in payload["inputs"]] + [o["batch"] for o in payload["outputs"]]
    if payload["type"] == EntryType.ATTEST:
        return [payload["subject"]["batch"]] if "batch" in payload["subject"] else []
    return [payload["batch"]]


@dataclass
class _UnitOfWork:
    """The ledger state a submission reads and changes, loaded once and written in bulk."""

    organisation: Organisation
    facilities: dict[str, Facility]
    entries: list[_Entry]
    batches: dict[str, Batch] = field(default_factory=dict)
    new_batches: list[Batch] = field(default_factory=list)
    changed: dict[str, Batch] = field(default_factory=dict)
    open_shipments: dict[str, ShipmentModel] = field(default_factory=dict)
    new_shipments: list[ShipmentModel] = field(default_factory=list)
    closed_shipments: list[ShipmentModel] = field(default_factory=list)
    links: list[EntryBatch] = field(default_factory=list)
    custody: set[str] = field(default_factory=set)
    organisations: dict[str, Organisation] = field(default_factory=dict)
    recipient_facilities: dict[tuple[int, str], Facility] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = {b for e in self.entries for b in _referenced_batches(e.payload)}
        self.batches = {b.id: b for b in Batch.objects.filter(id__in=ids)}
        self.open_shipments = {
            s.batch_id: s for s in ShipmentModel.objects.filter(batch_id__in=ids, receive_seq__isnull=True)
        }
        slugs = {e.payload["to_org"] for e in self.entries if e.payload["type"] == EntryType.SHIP}
        self.organisations = {o.slug: o for o in Organisation.objects.filter(slug__in=slugs)}
        # Recipients' facilities in one query, not one per ship entry of a bulk.
        self.recipient_facilities = {
            (f.organisation_id, f.code): f for f in Facility.objects.filter(organisation__slug__in=slugs)
        }

    # -- reading --------------------------------------------------------------------
    def _may_know(self, batch_id: str) -> bool:
        """Whether the submitter may learn that ``batch_id`` exists (no existence leaks)."""
        return (
            batch_id in self.custody
            or Access.objects.filter(organisation=self.organisation, batch_id=batch_id).exists()
        )

    def held(self, entry: _Entry, batch_id: str, pointer: str) -> Batch:
        """The batch, checked to be in the submitter's custody and not in transit."""
        batch = self.batches.get(batch_id)
        if batch is None or (batch.custodian_id != self.organisation.pk and not self._may_know(batch_id)):
            raise entry.reject("unknown-batch", f"There is no batch {batch_id!r} in your custody.", pointer)
        if batch.custodian_id != self.organisation.pk:
            raise entry.reject("not-custodian", f"Batch {batch_id!r} is no longer in your custody.", pointer)
        if batch.status == BatchStatus.IN_TRANSIT:
            raise entry.reject(
                "in-transit",
                f"Batch {batch_id!r} has been shipped and is in transit; it cannot be used "
                "until it is received.",
                pointer,
            )
        return batch

    def consume(self, entry: _Entry, batch: Batch, mass_g: int, pointer: str) -> None:
        if mass_g > batch.remaining_g:
            raise entry.reject(
                "overdraw",
                f"Batch {batch.id!r} has {batch.remaining_g} g remaining; {mass_g} g cannot "
                "be taken from it.",
                pointer,
            )
        batch.remaining_g -= mass_g
        if batch.remaining_g == 0:
            batch.status = BatchStatus.DEPLETED
        self.touch(batch, entry)

    def ensure_new(self, entry: _Entry, batch_id: str, pointer: str) -> None:
        if batch_id in self.batches:
            raise entry.reject(
                "batch-exists", f"Batch id {batch_id!r} is already taken; batch ids are global.", pointer
            )

    # -- writing --------------------------------------------------------------------
    def touch(self, batch: Batch, entry: _Entry) -> None:
        batch.updated_seq = entry.seq
        if not batch._state.adding:
            self.changed[batch.id] = batch

    def create(self, entry: _Entry, spec: dict[str, Any], origin: dict[str, Any]) -> Batch:
        facility = self.facilities[entry.payload["facility"]]
        composition = spec.get("composition")
        batch = Batch(
            id=spec["batch"],
            material=spec["material"],
            mass_g=spec["mass_g"],
            remaining_g=spec["mass_g"],
            composition=composition,
            composition_seq=entry.seq if composition else None,
            custodian=self.organisation,
            facility=facility,
            status=BatchStatus.ACTIVE,
            origin=origin,
            created_seq=entry.seq,
            updated_seq=entry.seq,
        )
        self.batches[batch.id] = batch
        self.new_batches.append(batch)
        self.custody.add(batch.id)
        return batch

    def link(self, entry: _Entry, batch_id: str, role: str, mass_g: int | None = None) -> None:
        self.links.append(EntryBatch(record_id=entry.seq, batch_id=batch_id, role=role, mass_g=mass_g))

    def flush(self) -> None:
        Batch.objects.bulk_create(self.new_batches)
        if self.changed:
            Batch.objects.bulk_update(
                list(self.changed.values()),
                [
                    "remaining_g",
                    "status",
                    "custodian",
                    "facility",
                    "composition",
                    "composition_seq",
                    "updated_seq",
                ],
                batch_size=500,
            )
        ShipmentModel.objects.bulk_create(self.new_shipments)
        if self.closed_shipments:
            ShipmentModel.objects.bulk_update(
                self.closed_shipments, ["receive_seq", "received_mass_g", "received_at"]
            )
        EntryBatch.objects.bulk_create(self.links)
        grant_access(self.organisation, self.custody)


def grant_access(organisation: Organisation, batch_ids: set[str]) -> None:
    """Record that ``organisation`` holds these batches; an OEM also sees their ancestry."""
    if not batch_ids:
        return
    grants = [Access(organisation=organisation, batch_id=b, via=AccessVia.CUSTODY) for b in batch_ids]
    if organisation.role == Role.OEM:
        grants += [
            Access(organisation=organisation, batch_id=b, via=AccessVia.PEDIGREE)
            for b in ancestors_of(batch_ids) - batch_ids
        ]
    Access.objects.bulk_create(grants, ignore_conflicts=True)


def ancestors_of(batch_ids: set[str]) -> set[str]:
    """Every batch upstream of ``batch_ids`` (one query per generation)."""
    seen: set[str] = set()
    frontier = set(batch_ids)
    while frontier:
        outputs = EntryBatch.objects.filter(batch_id__in=frontier, role=LinkRole.OUTPUT)
        parents = set(
            EntryBatch.objects.filter(
                record_id__in=outputs.values("record_id"), role=LinkRole.INPUT
            ).values_list("batch_id", flat=True)
        )
        frontier = parents - seen
        seen |= parents
    return seen


# -- the effect of each entry type --------------------------------------------------------


def _apply_intake(work: _UnitOfWork, entry: _Entry) -> None:
    p = entry.payload
    work.ensure_new(entry, p["batch"], "/payload/batch")
    work.create(entry, p, METHOD.intake(p["origin"]))
    work.link(entry, p["batch"], LinkRole.OUTPUT, p["mass_g"])


def _apply_ship(work: _UnitOfWork, entry: _Entry) -> None:
    p = entry.payload
    batch = work.held(entry, p["batch"], "/payload/batch")
    if batch.remaining_g == 0:
        raise entry.reject("overdraw", f"Batch {batch.id!r} has no mass left to ship.", "/payload/mass_g")
    if p["mass_g"] != batch.remaining_g:
        raise entry.reject(
            "partial-shipment",
            f"mass_g is {p['mass_g']} g but batch {batch.id!r} holds {batch.remaining_g} g; "
            "a ship entry moves the whole batch.",
            "/payload/mass_g",
        )
    recipient = work.organisations.get(p["to_org"])
    if recipient is None:
        raise entry.reject("unknown-organisation", f"No organisation {p['to_org']!r}.", "/payload/to_org")
    facility = None
    if "to_facility" in p:
        facility = work.recipient_facilities.get((recipient.pk, p["to_facility"]))
        if facility is None:
            raise entry.reject(
                "unknown-facility",
                f"{recipient.slug!r} has no facility {p['to_facility']!r}.",
                "/payload/to_facility",
            )
    shipment = ShipmentModel(
        batch=batch,
        ship_seq=entry.seq,
        sender=work.organisation,
        recipient=recipient,
        recipient_facility=facility,
        mass_g=p["mass_g"],
        shipped_at=parse_occurred_at(p["occurred_at"]),
    )
    work.new_shipments.append(shipment)
    work.open_shipments[batch.id] = shipment
    batch.status = BatchStatus.IN_TRANSIT
    work.touch(batch, entry)
    work.link(entry, batch.id, LinkRole.SUBJECT, p["mass_g"])


def _apply_receive(work: _UnitOfWork, entry: _Entry) -> None:
    p = entry.payload
    batch_id, me = p["batch"], work.organisation
    shipment = work.open_shipments.get(batch_id)
    batch = work.batches.get(batch_id)
    if shipment is None or shipment.recipient_id != me.pk:
        if batch is None or not work._may_know(batch_id):
            raise entry.reject(
                "unknown-batch",
                f"No batch {batch_id!r} is awaiting receipt by {me.slug!r}.",
                "/payload/batch",
            )
        if shipment is None:
            raise entry.reject(
                "not-in-transit",
                f"Batch {batch_id!r} is not in transit (never shipped, or already received).",
                "/payload/batch",
            )
        raise entry.reject(
            "not-recipient", f"Batch {batch_id!r} was shipped to another organisation.", "/payload/batch"
        )
    assert batch is not None
    shipment.receive_seq = entry.seq
    shipment.received_mass_g = p["mass_g"]
    shipment.received_at = parse_occurred_at(p["occurred_at"])
    if shipment.pk is not None:
        work.closed_shipments.append(shipment)
    del work.open_shipments[batch_id]
    batch.custodian = me
    batch.facility = work.facilities[p["facility"]]
    batch.status = BatchStatus.ACTIVE
    # Custody moves with what physically arrived; the difference is a transit flag's business.
    batch.remaining_g = p["mass_g"]
    work.touch(batch, entry)
    work.custody.add(batch_id)
    work.link(entry, batch_id, LinkRole.SUBJECT, p["mass_g"])


def _apply_transform(work: _UnitOfWork, entry: _Entry) -> None:
    p = entry.payload
    contributions = []
    for i, item in enumerate(p["inputs"]):
        pointer = f"/payload/inputs/{i}"
        batch = work.held(entry, item["batch"], f"{pointer}/batch")
        work.consume(entry, batch, item["mass_g"], f"{pointer}/mass_g")
        contributions.append(Contribution(item["mass_g"], batch.composition, batch.origin))
        work.link(entry, batch.id, LinkRole.INPUT, item["mass_g"])
    origin = METHOD.blend(contributions)
    for i, item in enumerate(p["outputs"]):
        work.ensure_new(entry, item["batch"], f"/payload/outputs/{i}/batch")
        work.create(entry, item, origin)
        work.link(entry, item["batch"], LinkRole.OUTPUT, item["mass_g"])


def _apply_assay(work: _UnitOfWork, entry: _Entry) -> None:
    p = entry.payload
    if work.organisation.role == Role.LAB:
        batch = work.batches.get(p["batch"])
        if batch is None:
            raise entry.reject("unknown-batch", f"There is no batch {p['batch']!r}.", "/payload/batch")
    else:
        batch = work.batches.get(p["batch"])
        if batch is None or batch.custodian_id != work.organisation.pk:
            work.held(entry, p["batch"], "/payload/batch")  # raises the precise refusal
            raise AssertionError("unreachable")
    batch.composition = p["composition"]
    batch.composition_seq = entry.seq
    work.touch(batch, entry)
    work.link(entry, batch.id, LinkRole.SUBJECT)


def _apply_write_off(work: _UnitOfWork, entry: _Entry) -> None:
    p = entry.payload
    batch = work.held(entry, p["batch"], "/payload/batch")
    work.consume(entry, batch, p["mass_g"], "/payload/mass_g")
    work.link(entry, batch.id, LinkRole.SUBJECT, p["mass_g"])


def _apply_attest(work: _UnitOfWork, entry: _Entry) -> None:
    batch_id = apply_attest(work.organisation, entry.payload, entry.seq, entry.reject)
    if batch_id is not None:
        work.link(entry, batch_id, LinkRole.SUBJECT)


APPLY: dict[str, Callable[[_UnitOfWork, _Entry], None]] = {
    EntryType.INTAKE: _apply_intake,
    EntryType.SHIP: _apply_ship,
    EntryType.RECEIVE: _apply_receive,
    EntryType.TRANSFORM: _apply_transform,
    EntryType.ASSAY: _apply_assay,
    EntryType.WRITE_OFF: _apply_write_off,
    EntryType.ATTEST: _apply_attest,
}


# -- keys -------------------------------------------------------------------------------


def _append_service_record(organisation: Organisation, payload: dict[str, Any]) -> LogRecord:
    """Sign ``payload`` with the log key and append it (caller holds the lock)."""
    payload_bytes = canonical_bytes(payload)
    signature = b64url_encode(log_private_key().sign(payload_bytes))
    next_seq, prev = log_head()
    item = Appendable(
        entry_id=payload["id"],
        entry_type=payload["type"],
        organisation_id=organisation.pk,
        key_id=log_key_id(),
        signature=signature,
        payload_bytes=payload_bytes,
    )
    (record,) = build_records([item], next_seq, prev, timezone.now())
    LogRecord.objects.bulk_create([record])
    return record


def register_key(organisation: Organisation, public_key_b64url: str, label: str = "") -> SigningKey:
    """Register an organisation's Ed25519 public key and log a ``key_registered`` record."""
    try:
        raw = b64url_decode(public_key_b64url)
    except ValueError:
        raise EntryRejected(
            "key-rejected", "public_key must be the raw 32-byte key in base64url.", "/public_key"
        ) from None
    try:
        public_key_from_bytes(raw)
    except ProtocolError as exc:
        raise EntryRejected("key-rejected", exc.detail, "/public_key") from None
    kid = compute_key_id(raw)
    with transaction.atomic():
        lock_log()
        if SigningKey.objects.filter(key_id=kid).exists():
            raise EntryRejected("key-exists", f"Key {kid} is already registered.", "/public_key")
        now = timezone.now()
        record = _append_service_record(
            organisation,
            {
                "id": str(uuid.uuid4()),
                "type": EntryType.KEY_REGISTERED.value,
                "org": organisation.slug,
                "occurred_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "key_id": kid,
                "public_key": b64url_encode(raw),
                "algorithm": "ed25519",
            },
        )
        return SigningKey.objects.create(
            key_id=kid,
            organisation=organisation,
            public_key=b64url_encode(raw),
            label=label,
            registered_seq=record.seq,
            registered_at=record.recorded_at,
        )


def revoke_key(key: SigningKey, reason: str = "") -> SigningKey:
    """Revoke a key from now on and log a ``key_revoked`` record. Entries already in the
    log stay valid: they were signed while the key was."""
    with transaction.atomic():
        lock_log()
        key = SigningKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_seq is not None:
            return key
        now = timezone.now()
        record = _append_service_record(
            key.organisation,
            {
                "id": str(uuid.uuid4()),
                "type": EntryType.KEY_REVOKED.value,
                "org": key.organisation.slug,
                "occurred_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "key_id": key.key_id,
                "reason": reason,
            },
        )
        key.revoked_seq = record.seq
        key.revoked_at = record.recorded_at
        key.revocation_reason = reason
        key.save(update_fields=["revoked_seq", "revoked_at", "revocation_reason"])
        return key
