"""Running the soft rules over the ledger, and what follows from a flag.

The rules themselves are pure (checks.rules); this module loads the domain objects they
need from the database, records their findings as flags (at most one per rule and
subject), and handles the flag lifecycle (acknowledge, resolve by an auditor's ``attest``)
and the webhook alerts. Tasks (checks.tasks) are thin wrappers around these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Prefetch, Q
from django.utils import timezone

from accounts.models import Organisation, Role, SigningKey
from checks import conf, rules
from checks.models import (
    UNRESOLVED,
    Delivery,
    DeliveryEvent,
    Flag,
    FlagBatch,
    FlagOrganisation,
    FlagStatus,
    PendingCheck,
    SweepState,
    Webhook,
)
from ledger.errors import EntryRejected
from ledger.logkey import log_key_id, log_public_key_raw
from ledger.models import Batch, BatchStatus, EntryBatch, EntryType, LinkRole, LogRecord, Shipment
from ledger.origin import CRMA_ELEMENTS
from ledger.protocol.merkle import CompactRange

logger = logging.getLogger(__name__)

# Devices and assemblies are never assayed as such: their magnets are, once taken out.
NOT_ASSAYABLE = frozenset({"eol_product", "magnet_assembly"})
SWEEP_CHUNK = 5000
ENQUEUE_CHUNK = 100
# One quick retry, then give up: the submission must not wait for a broker that is down.
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
SWEEP_RANGE = 5000
_TRANSFORM_COLUMNS = ("seq", "organisation_id", "canonical")
_BATCH_COLUMNS = ("id", "material", "composition", "composition_seq")


@dataclass(frozen=True)
class Raised:
    """A finding and the organisations it concerns directly."""

    finding: rules.Finding
    organisations: frozenset[int]


# -- pending checks ------------------------------------------------------------------------


def record_pending(records: Sequence[LogRecord]) -> None:
    """Owe a check to each new record, in the caller's transaction, and enqueue the checks
    once it commits. If the broker is down then, the rows stay and drain_pending runs them."""
    if not records:
        return
    PendingCheck.objects.bulk_create([PendingCheck(seq=r.seq) for r in records])
    seqs = [r.seq for r in records]
    transaction.on_commit(lambda: enqueue(seqs))


def enqueue(seqs: Iterable[int]) -> int:
    """Send the checks of ``seqs`` to the workers; never raises (a lost message is drained
    later). Returns how many checks were sent.

    One check_entries message carries up to ENQUEUE_CHUNK seqs of one submission: a
    publish costs about 1-2 ms, which per entry would cost a 1,000-entry bulk more than
    its own ingestion. A single-entry submission is one task for its one entry.
    """
    from checks.tasks import check_entries

    seqs = list(seqs)
    sent = 0
    try:
        for start in range(0, len(seqs), ENQUEUE_CHUNK):
            part = seqs[start : start + ENQUEUE_CHUNK]
            check_entries.apply_async((part,), retry=True, retry_policy=_PUBLISH_RETRY)
            sent += len(part)
    except Exception:
        # The rows are in the database: drain_pending enqueues them once the broker is back.
        logger.warning("could not enqueue checks (sent %d); they stay pending", sent, exc_info=True)
    return sent


def drain_pending(older_than_seconds: int | None = None) -> int:
    """Re-enqueue checks still pending after ``older_than_seconds`` (and not held by a live
    claim). Returns how many were sent."""
    age = conf.drain_after_seconds() if older_than_seconds is None else older_than_seconds
    now = timezone.now()
    lease_cutoff = now - timedelta(seconds=conf.lease_seconds())
    seqs = list(
        PendingCheck.objects.filter(created_at__lte=now - timedelta(seconds=age))
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=lease_cutoff))
        .values_list("seq", flat=True)[:10000]
    )
    return enqueue(seqs)


class Busy(Exception):
    """Another worker holds the claim on this check; try again after its lease."""


@contextmanager
def _atomic_relaxed() -> Iterator[None]:
    """A transaction whose commit does not wait for the WAL flush (PostgreSQL). Safe here:
    a claim or a check lost in a crash is only done again, never half done."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def run_pending_check(seq: int) -> list[Flag] | None:
    """Run the pending check of record ``seq`` (see run_pending_checks). Returns its new
    flags, or None when there was nothing to do. Raises Busy when another worker's lease on
    it is still running."""
    done = run_pending_checks([seq])
    if seq in done.busy:
        raise Busy(f"check #{seq} is claimed by another worker")
    return done.flags if seq in done.checked else None


@dataclass
class Checked:
    """What run_pending_checks did: the seqs checked, the new flags, the seqs another
    worker holds."""

    checked: list[int]
    flags: list[Flag]
    busy: list[int]


def run_pending_checks(seqs: Sequence[int]) -> Checked:
    """Claim the pending checks of ``seqs`` (a conditional UPDATE: unclaimed, or whose lease
    ran out), run them, then write their flags and drop their rows in one transaction:
    all or nothing, a constant number of queries for the whole batch. Checks already done
    are skipped; checks another worker holds are reported as busy."""
    token = uuid.uuid4()
    now = timezone.now()
    lease_cutoff = now - timedelta(seconds=conf.lease_seconds())
    with _atomic_relaxed():
        PendingCheck.objects.filter(seq__in=seqs).filter(
            Q(claimed_at__isnull=True) | Q(claimed_at__lt=lease_cutoff)
        ).update(claimed_at=now, claim_token=token, attempts=F("attempts") + 1)
        claimed = set(
            PendingCheck.objects.filter(seq__in=seqs, claim_token=token).values_list("seq", flat=True)
        )
    if len(claimed) < len(set(seqs)):
        busy = sorted(PendingCheck.objects.filter(seq__in=set(seqs) - claimed).values_list("seq", flat=True))
    else:
        busy = []
    if not claimed:
        return Checked([], [], busy)
    try:
        return _run_claimed(sorted(claimed), token, busy)
    except Exception as exc:
        # Release our claims at once, with the reason, so a retry or the drain takes them.
        PendingCheck.objects.filter(claim_token=token).update(
            last_error=repr(exc)[:2000], claimed_at=None, claim_token=None
        )
        raise


def _run_claimed(claimed: list[int], token: uuid.UUID, busy: list[int]) -> Checked:
    pause = conf.debug_sleep_seconds()
    if pause:
        time.sleep(pause)  # test-only: lets a test kill the worker in the middle of a check
    kinds, raised = findings_for_records(claimed)
    with _atomic_relaxed():
        flags = save_findings(raised)
        done = PendingCheck.objects.filter(seq__in=claimed, claim_token=token).delete()[0]
        if done != len(claimed):
            # A lease ran out and another worker took some checks over: leave this batch
            # to it and to the drain (the flags would be the same; the unique key keeps
            # them single).
            transaction.set_rollback(True)
            return Checked([], [], claimed)
        receives = [seq for seq, kind in kinds.items() if kind == EntryType.RECEIVE]
        if receives:
            transaction.on_commit(lambda: [alert_new_holder(seq) for seq in receives])
    return Checked(claimed, flags, busy)


def alert_new_holder(seq: int) -> None:
    """After a ``receive``: alert the recipient about the unresolved flags on the batch it
    now holds and upstream of it (each flag at most once per webhook)."""
    shipment = Shipment.objects.filter(receive_seq=seq).first()
    if (
        shipment is None
        or not Webhook.objects.filter(organisation_id=shipment.recipient_id, active=True).exists()
    ):
        return
    own = FlagBatch.objects.filter(batch_id=shipment.batch_id, flag__status__in=UNRESOLVED).values_list(
        "flag_id", flat=True
    )
    ids = sorted({*own, *(f.pk for f in upstream_open_flags([shipment.batch_id])[shipment.batch_id])})
    if ids:
        alert(ids, DeliveryEvent.OPENED, only={shipment.recipient_id})


# -- loading domain objects ------------------------------------------------------------------


def findings_for_records(seqs: Sequence[int]) -> tuple[dict[int, str], list[Raised]]:
    """Run the rules each entry calls for: transit on a receive, the transform rules on a
    transform (and again on the transforms around an assayed batch), the unassayed-claim
    rule on a ship. Returns each seq's entry type and the findings."""
    rows = list(LogRecord.objects.filter(seq__in=seqs).values_list("entry_type", *_TRANSFORM_COLUMNS))
    kinds = {row[1]: row[0] for row in rows}
    by_kind: dict[str, list[int]] = defaultdict(list)
    for seq, kind in kinds.items():
        by_kind[kind].append(seq)
    raised: list[Raised] = []
    if by_kind[EntryType.RECEIVE]:
        raised += transit_findings(Shipment.objects.filter(receive_seq__in=by_kind[EntryType.RECEIVE]))
    transforms = {row[1]: row[1:] for row in rows if row[0] == EntryType.TRANSFORM}
    if by_kind[EntryType.ASSAY]:
        batch_ids = EntryBatch.objects.filter(record_id__in=by_kind[EntryType.ASSAY]).values("batch_id")
        around = EntryBatch.objects.filter(
            batch_id__in=batch_ids,
            role__in=(LinkRole.INPUT, LinkRole.OUTPUT),
            record__entry_type=EntryType.TRANSFORM,
        ).values("record_id")
        for row in LogRecord.objects.filter(seq__in=around).values_list(*_TRANSFORM_COLUMNS):
            transforms[row[0]] = row
    if transforms:
        raised += transform_findings([transforms[k] for k in sorted(transforms)])
    for seq in by_kind[EntryType.SHIP]:
        raised += claim_findings(seq)
    return kinds, raised


def transit_findings(shipments: Iterable[Shipment]) -> list[Raised]:
    limits = conf.limits()
    out = []
    for s in shipments:
        if s.receive_seq is None or s.received_mass_g is None:
            continue
        t = rules.Transit(s.batch_id, s.ship_seq, s.receive_seq, s.mass_g, s.received_mass_g)
        found = rules.transit(t, limits)
        if found:
            out.append(Raised(found, frozenset({s.sender_id, s.recipient_id})))
    return out


def load_transforms(
    rows: Iterable[tuple[int, int, str]], batches: dict[str, dict[str, Any]] | None = None
) -> list[tuple[rules.Transform, int]]:
    """Transform records (seq, organisation id, canonical JSON) as rules.Transform, with the
    current best composition of every batch (newer assays supersede), each with the
    submitting organisation's id. ``batches`` may be preloaded (id -> material,
    composition, composition_seq); otherwise the batches named are read in one query."""
    parsed = [(seq, org_id, json.loads(canonical)["envelope"]["payload"]) for seq, org_id, canonical in rows]
    if batches is None:
        ids = {item["batch"] for _, _, p in parsed for item in (*p["inputs"], *p["outputs"])}
        batches = {b["id"]: b for b in Batch.objects.filter(id__in=ids).values(*_BATCH_COLUMNS)}
    out = []
    for seq, org_id, p in parsed:

        def item(spec: dict[str, Any], material: str | None = None) -> rules.Item:
            row = batches.get(spec["batch"], {})
            return rules.Item(
                spec["batch"],
                material or row.get("material", ""),
                spec["mass_g"],
                row.get("composition", spec.get("composition")),
            )

        inputs = tuple(item(i) for i in p["inputs"])
        outputs = tuple(item(o, o["material"]) for o in p["outputs"])
        assays = sorted(
            {
                batches[b]["composition_seq"]
                for b in (*(i.batch for i in inputs), *(o.batch for o in outputs))
                if b in batches and batches[b]["composition_seq"] not in (None, seq)
            }
        )
        losses = tuple(rules.Loss(x["kind"], x["mass_g"]) for x in p.get("losses", []))
        out.append((rules.Transform(seq, p["process"], inputs, outputs, losses, tuple(assays)), org_id))
    return out


def transform_findings(
    rows: Iterable[tuple[int, int, str]], batches: dict[str, dict[str, Any]] | None = None
) -> list[Raised]:
    """The transform rules over transform records given as (seq, organisation id, canonical)."""
    overrides = conf.overrides()
    limits: dict[str, rules.Limits] = {}
    out = []
    for t, org_id in load_transforms(rows, batches):
        if t.process not in limits:
            limits[t.process] = rules.limits_for(t.process, overrides)
        out += [Raised(f, frozenset({org_id})) for f in rules.check_transform(t, limits[t.process])]
    return out


def claim_findings(ship_seq: int) -> list[Raised]:
    """The unassayed-claim rule for the batch shipped at ``ship_seq``."""
    from ledger.services import ancestors_of

    shipment = Shipment.objects.filter(ship_seq=ship_seq).select_related("batch").first()
    if shipment is None:
        return []
    batch = shipment.batch
    elements = batch.origin.get("elements", {})
    recycled = tuple(
        el
        for el in CRMA_ELEMENTS
        if (share := elements.get(el)) is not None
        and share.get("post_consumer", 0) + share.get("pre_consumer", 0) > 0
    )
    if not recycled:
        return []
    upstream = ancestors_of({batch.id}) | {batch.id}
    unassayed = tuple(
        Batch.objects.filter(id__in=upstream, composition__isnull=True)
        .exclude(material__in=NOT_ASSAYABLE)
        .order_by("created_seq")
        .values_list("id", "material")
    )
    found = rules.unassayed_claim(rules.Claim(batch.id, ship_seq, recycled, unassayed))
    return [Raised(found, frozenset({shipment.sender_id}))] if found else []


# -- flags -----------------------------------------------------------------------------------


def save_findings(raised: Iterable[Raised]) -> list[Flag]:
    """Record findings as flags, skipping any (rule, subject) already flagged; alert the
    organisations concerned once the transaction commits. Returns the new flags.

    In bulk (a sweep can raise a thousand): one query finds the flags that exist, one
    inserts the new ones, two link them. If a concurrent check inserted one of them first,
    the unique key refuses the bulk and they are written one by one instead."""
    items: dict[tuple[str, str], Raised] = {}
    for item in raised:
        items.setdefault((item.finding.rule, item.finding.subject), item)
    if not items:
        return []
    existing = set(
        Flag.objects.filter(
            subject_key__in={s for _, s in items}, rule__in={r for r, _ in items}
        ).values_list("rule", "subject_key")
    )
    fresh = [item for key, item in items.items() if key not in existing]
    if not fresh:
        return []
    try:
        with transaction.atomic():
            new = Flag.objects.bulk_create([_flag(item.finding) for item in fresh])
    except IntegrityError:
        new, kept = [], []
        for item in fresh:
            try:
                with transaction.atomic():
                    new.append(_create(item.finding))
                kept.append(item)
            except IntegrityError:
                continue  # a concurrent check raised the same flag first
        fresh = kept
    FlagOrganisation.objects.bulk_create(
        [
            FlagOrganisation(flag=flag, organisation_id=o)
            for flag, item in zip(new, fresh, strict=True)
            for o in sorted(item.organisations)
        ]
    )
    FlagBatch.objects.bulk_create(
        [
            FlagBatch(flag=flag, batch_id=b)
            for flag, item in zip(new, fresh, strict=True)
            for b in dict.fromkeys(item.finding.batches)
        ]
    )
    ids = [flag.pk for flag in new]
    if ids:
        transaction.on_commit(lambda: alert(ids, DeliveryEvent.OPENED))
    return new


def _flag(f: rules.Finding) -> Flag:
    return Flag(
        rule=f.rule,
        severity=f.severity,
        subject_key=f.subject,
        batch_id=f.batch,
        seqs=list(f.seqs),
        evidence=f.evidence,
        summary=f.summary,
    )


def _create(f: rules.Finding) -> Flag:
    flag = _flag(f)
    flag.save()
    return flag


def with_details(flags: Any) -> Any:
    """A Flag queryset with what flag_document reads, in a constant number of queries."""
    return flags.select_related("acknowledged_by", "resolved_by").prefetch_related(
        Prefetch(
            "org_links", queryset=FlagOrganisation.objects.select_related("organisation").order_by("id")
        ),
        Prefetch("batch_links", queryset=FlagBatch.objects.order_by("id")),
    )


def flag_document(flag: Flag) -> dict[str, Any]:
    """The JSON shape of a flag, the same in the API and in webhook bodies."""
    return {
        "id": flag.pk,
        "rule": flag.rule,
        "severity": flag.severity,
        "status": flag.status,
        "subject": flag.subject_key,
        "batch": flag.batch_id,
        "batches": [link.batch_id for link in flag.batch_links.all()],
        "seqs": flag.seqs,
        "summary": flag.summary,
        "evidence": flag.evidence,
        "organisations": [link.organisation.slug for link in flag.org_links.all()],
        "detected_at": flag.detected_at.isoformat(),
        "acknowledged_at": flag.acknowledged_at.isoformat() if flag.acknowledged_at else None,
        "acknowledged_by": flag.acknowledged_by.slug if flag.acknowledged_by else None,
        "resolution": (
            {
                "seq": flag.resolution_seq,
                "verdict": flag.resolution_verdict,
                "note": flag.resolution_note,
                "by": flag.resolved_by.slug if flag.resolved_by else None,
                "at": flag.resolved_at.isoformat() if flag.resolved_at else None,
            }
            if flag.resolution_seq is not None
            else None
        ),
    }


class FlagRefused(Exception):
    """A flag action that is not allowed: a problem code of ledger.errors and a detail."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def acknowledge(flag: Flag, organisation: Organisation) -> Flag:
    """An organisation the flag concerns (or an auditor) has seen it: open -> acknowledged.
    Acknowledging twice is harmless; a resolved flag stays resolved."""
    concerned = FlagOrganisation.objects.filter(flag=flag, organisation=organisation).exists()
    if not (concerned or organisation.is_auditor):
        raise FlagRefused(
            "flag-not-concerned",
            f"Flag {flag.pk} does not concern {organisation.slug!r}; only the organisations it "
            "names, or an auditor, may acknowledge it.",
        )
    if flag.status == FlagStatus.RESOLVED:
        raise FlagRefused("flag-resolved", f"Flag {flag.pk} is already resolved.")
    updated = Flag.objects.filter(pk=flag.pk, status=FlagStatus.OPEN).update(
        status=FlagStatus.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=organisation
    )
    if updated:
        flag.refresh_from_db()
    return flag


VERDICTS = ("confirmed", "disputed", "resolved")


def apply_attest(
    organisation: Organisation,
    payload: dict[str, Any],
    seq: int,
    reject: Callable[[str, str, str], EntryRejected],
) -> str | None:
    """The effect of an ``attest`` entry, inside its submission's transaction.

    Only an auditor may attest. On a flag, ``resolved`` and ``disputed`` close it (the
    verdict and note are kept), ``confirmed`` marks it acknowledged: the problem is real
    and still open. On a batch or a seq the attest is a signed statement in the log and
    changes nothing else. Returns the batch id the entry is about, if any.
    """
    if organisation.role != Role.AUDITOR:
        raise reject(
            "attest-not-auditor",
            f"{organisation.slug!r} is a {organisation.role}; only an auditor may submit an attest entry.",
            "/payload/type",
        )
    subject = payload["subject"]
    verdict = payload["verdict"]
    if "flag" in subject:
        flag = Flag.objects.select_for_update().filter(pk=subject["flag"]).first()
        if flag is None:
            raise reject("unknown-flag", f"There is no flag {subject['flag']}.", "/payload/subject/flag")
        if flag.status == FlagStatus.RESOLVED:
            raise reject(
                "flag-resolved",
                f"Flag {flag.pk} was resolved by the attest entry at seq {flag.resolution_seq}.",
                "/payload/subject/flag",
            )
        now = timezone.now()
        if verdict == "confirmed":
            flag.status = FlagStatus.ACKNOWLEDGED
            flag.acknowledged_at = flag.acknowledged_at or now
            flag.acknowledged_by = flag.acknowledged_by or organisation
            flag.save(update_fields=["status", "acknowledged_at", "acknowledged_by"])
        else:
            flag.status = FlagStatus.RESOLVED
            flag.resolved_at = now
            flag.resolution_seq = seq
            flag.resolution_verdict = verdict
            flag.resolution_note = payload.get("note", "")
            flag.resolved_by = organisation
            flag.save(
                update_fields=[
                    "status",
                    "resolved_at",
                    "resolution_seq",
                    "resolution_verdict",
                    "resolution_note",
                    "resolved_by",
                ]
            )
            flag_id = flag.pk
            transaction.on_commit(lambda: alert([flag_id], DeliveryEvent.RESOLVED))
        return flag.batch_id
    if "batch" in subject:
        if not Batch.objects.filter(pk=subject["batch"]).exists():
            raise reject(
                "unknown-batch", f"There is no batch {subject['batch']!r}.", "/payload/subject/batch"
            )
        return str(subject["batch"])
    if not (0 <= subject["seq"] < seq):
        raise reject("invalid-payload", f"There is no entry at seq {subject['seq']}.", "/payload/subject/seq")
    return None


# -- what the batch endpoint shows -----------------------------------------------------------


_UPSTREAM_FLAGS_SQL = """
WITH RECURSIVE up(origin, batch) AS (
    SELECT o.batch_id, i.batch_id
    FROM {link} o JOIN {link} i ON i.record_id = o.record_id AND i.role = %s
    WHERE o.role = %s AND o.batch_id IN ({ids})
  UNION
    SELECT up.origin, i.batch_id
    FROM up
    JOIN {link} o ON o.batch_id = up.batch AND o.role = %s
    JOIN {link} i ON i.record_id = o.record_id AND i.role = %s
)
SELECT DISTINCT up.origin, f.id, f.rule, f.severity, f.status, f.batch_id, f.summary
FROM up
JOIN {flag_batch} fb ON fb.batch_id = up.batch
JOIN {flag} f ON f.id = fb.flag_id AND f.status IN (%s, %s)
"""


def upstream_open_flags(batch_ids: Sequence[str]) -> dict[str, list[Flag]]:
    """Per batch, the unresolved flags on any batch upstream of it, in one query (a
    recursive walk of the pedigree, the same graph as ledger.services.ancestors_of)."""
    out: dict[str, list[Flag]] = {b: [] for b in batch_ids}
    if not batch_ids:
        return out
    sql = _UPSTREAM_FLAGS_SQL.format(
        link=EntryBatch._meta.db_table,
        flag_batch=FlagBatch._meta.db_table,
        flag=Flag._meta.db_table,
        ids=", ".join(["%s"] * len(batch_ids)),
    )
    params = [LinkRole.INPUT, LinkRole.OUTPUT, *batch_ids, LinkRole.OUTPUT, LinkRole.INPUT, *UNRESOLVED]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for origin, pk, rule, severity, status, batch_id, summary in sorted(rows, key=lambda r: (r[0], r[1])):
        out[origin].append(
            Flag(pk=pk, rule=rule, severity=severity, status=status, batch_id=batch_id, summary=summary)
        )
    return out


def flags_for_batches(batch_ids: Sequence[str], user: Any) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per batch: its own flags (``flags``) and the unresolved flags upstream
    (``upstream_flags``), in at most three queries whatever the number of batches.
    Upstream flags the user may not read show only rule, severity and status, so nothing
    about batches they cannot see leaks through."""
    ids = list(dict.fromkeys(batch_ids))
    own: dict[str, list[Flag]] = defaultdict(list)
    links = (
        FlagBatch.objects.filter(batch_id__in=ids)
        .select_related("flag")
        .only(
            "batch_id",
            "flag__id",
            "flag__rule",
            "flag__severity",
            "flag__status",
            "flag__summary",
            "flag__batch_id",
        )
        .order_by("flag_id")
    )
    for link in links:
        own[link.batch_id].append(link.flag)
    upstream = upstream_open_flags(ids)
    upstream_ids = {f.pk for flags in upstream.values() for f in flags}
    readable = (
        set(Flag.objects.visible_to(user).filter(pk__in=upstream_ids).values_list("pk", flat=True))
        if upstream_ids
        else set()
    )

    def short(flag: Flag) -> dict[str, Any]:
        return {
            "id": flag.pk,
            "rule": flag.rule,
            "severity": flag.severity,
            "status": flag.status,
            "batch": flag.batch_id,
            "summary": flag.summary,
        }

    out = {}
    for b in ids:
        mine = {f.pk for f in own[b]}
        out[b] = {
            "flags": [short(f) for f in own[b]],
            "upstream_flags": [
                short(f) if f.pk in readable else {"rule": f.rule, "severity": f.severity, "status": f.status}
                for f in upstream[b]
                if f.pk not in mine
            ],
        }
    return out


# -- sweeps ----------------------------------------------------------------------------------


def sweep_unreceived(now: datetime | None = None) -> list[Flag]:
    """Flag every shipment still in transit after the allowed days."""
    now = now or timezone.now()
    limits = conf.limits()
    cutoff = now - timedelta(days=limits.unreceived_days)
    raised = []
    for s in Shipment.objects.filter(receive_seq__isnull=True, shipped_at__lt=cutoff).order_by("ship_seq"):
        found = rules.unreceived(
            rules.OpenShipment(s.batch_id, s.ship_seq, s.shipped_at, s.mass_g), now, limits
        )
        if found:
            raised.append(Raised(found, frozenset({s.sender_id, s.recipient_id})))
    with transaction.atomic():
        return save_findings(raised)


def _keys() -> dict[str, rules.KeyInfo]:
    keys = {
        k: rules.KeyInfo(_b64(pk), reg, rev)
        for k, pk, reg, rev in SigningKey.objects.values_list(
            "key_id", "public_key", "registered_seq", "revoked_seq"
        )
    }
    keys[log_key_id()] = rules.KeyInfo(log_public_key_raw(), None, None)
    return keys


def _b64(text: str) -> bytes:
    from ledger.protocol.envelope import b64url_decode

    return b64url_decode(text)


def _records(after: int, upto: int | None = None) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of records after seq ``after`` as plain tuples (keyset pagination)."""
    last = after
    while True:
        rows = LogRecord.objects.filter(seq__gt=last)
        if upto is not None:
            rows = rows.filter(seq__lte=upto)
        chunk = list(
            rows.order_by("seq").values_list(
                "seq",
                "prev",
                "leaf_hash",
                "canonical",
                "entry_id",
                "entry_type",
                "key_id",
                "payload_digest",
                "organisation__slug",
                "organisation_id",
            )[:SWEEP_CHUNK]
        )
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def _verify_chunk(
    chunk: list[tuple[Any, ...]],
    previous: str | None,
    last_seq: int,
    keys: dict[str, rules.KeyInfo],
    signatures_verified_upto: int = -1,
) -> tuple[list[Raised], str | None, int]:
    """The integrity rule over consecutive records; returns findings, last leaf, last seq.
    Signatures of seqs <= ``signatures_verified_upto`` are not checked again."""
    raised = []
    for seq, prev, leaf, canonical, entry_id, kind, key_id, digest, slug, org_id in chunk:
        stored = rules.StoredRecord(seq, prev, leaf, canonical, str(entry_id), kind, key_id, digest, slug)
        # The payload bytes' canonical form was checked at submission; here the leaf hash
        # and the signature over those exact bytes prove they did not change since.
        found = rules.integrity(
            stored,
            previous,
            keys.get(key_id),
            expected_seq=last_seq + 1,
            recheck_canonical=False,
            check_signature=seq > signatures_verified_upto,
        )
        if found:
            raised.append(Raised(found, frozenset({org_id})))
        previous, last_seq = leaf, seq
    return raised, previous, last_seq


def _signed_checkpoint() -> tuple[int, str] | None:
    """(size, root hex) of the latest checkpoint whose note verifies under the log key."""
    from django.conf import settings

    from ledger.models import Checkpoint
    from ledger.protocol.note import NoteError, verify_checkpoint, vkey

    latest = Checkpoint.objects.order_by("-size").first()
    if latest is None:
        return None
    origin = settings.LEDGER_LOG_ORIGIN
    try:
        parsed = verify_checkpoint(latest.note, [vkey(origin, log_public_key_raw())], origin=origin)
    except NoteError:
        logger.warning("checkpoint %s does not verify under the log key", latest.size)
        return None
    return parsed.size, parsed.root.hex()


def sweep_integrity(full: bool = False) -> list[Flag]:
    """Re-verify stored records: hash, chain link, layout, columns, signature, key
    validity. Incremental from the watermark of the last sweep, or from seq 0 when ``full``
    (daily: a record altered behind the watermark is found then). Returns new flags.

    The full sweep anchors on the latest signed checkpoint: it rebuilds the Merkle root over
    the stored leaf hashes and compares it with the root the log key signed, while every
    record's bytes are hashed against its leaf hash. Where both hold, a record is
    byte-identical to what was published and its signature, verified when the incremental
    sweep first saw it, is not verified again; records past the checkpoint or the watermark
    are. If the roots differ every signature is verified again, to name the records."""
    state, _ = SweepState.objects.get_or_create(name="integrity")
    start = -1 if full else state.last_seq
    previous = None if start < 0 else (state.last_leaf or None)
    keys = _keys()
    new: list[Flag] = []
    verified_upto = -1
    anchor = _signed_checkpoint() if full else None
    if anchor is not None:
        size, signed_root = anchor
        mismatch = rules.checkpoint_mismatch(size, signed_root, _stored_root(size))
        if mismatch:
            with transaction.atomic():
                new += save_findings([Raised(mismatch, frozenset())])
        else:
            verified_upto = min(state.last_seq, size - 1)
    last_seq = start
    for chunk in _records(start):
        raised, previous, last_seq = _verify_chunk(chunk, previous, last_seq, keys, verified_upto)
        with transaction.atomic():
            new += save_findings(raised)
            if not full or last_seq > state.last_seq:
                SweepState.objects.filter(name="integrity").update(
                    last_seq=last_seq, last_leaf=previous or "", updated_at=timezone.now()
                )
    if full:
        SweepState.objects.filter(name="integrity").update(full_sweep_at=timezone.now())
    return new


def _stored_root(size: int) -> str:
    """Merkle root (hex) over the stored leaf hashes of the first ``size`` records."""
    tree = CompactRange()
    last = -1
    while tree.size < size:
        leaves = list(
            LogRecord.objects.filter(seq__gt=last, seq__lt=size)
            .order_by("seq")
            .values_list("seq", "leaf_hash")[: SWEEP_CHUNK * 4]
        )
        if not leaves:
            break
        for seq, leaf in leaves:
            if seq != tree.size:
                return "missing-record"  # a gap: no root can match
            tree.append(bytes.fromhex(leaf))
        last = leaves[-1][0]
    return tree.root().hex() if tree.size == size else "missing-record"


def sweep_mass_balance(first: int = 0, last: int | None = None) -> list[Flag]:
    """Run the transform rules over every transform in the log again, or over those with
    ``first`` <= seq <= ``last`` (after a change of the overrides, or in the daily full
    sweep). Returns new flags."""
    new: list[Flag] = []
    after = first - 1
    while True:
        records = LogRecord.objects.filter(entry_type=EntryType.TRANSFORM, seq__gt=after)
        if last is not None:
            records = records.filter(seq__lte=last)
        chunk = list(records.order_by("seq").values_list(*_TRANSFORM_COLUMNS)[:SWEEP_CHUNK])
        if not chunk:
            return new
        # The chunk's batches through the link index and a seq range: no IN list of
        # thousands of ids to build and parse.
        batches = {
            b["id"]: b
            for b in Batch.objects.filter(
                links__record_id__gte=chunk[0][0],
                links__record_id__lte=chunk[-1][0],
                links__role__in=(LinkRole.INPUT, LinkRole.OUTPUT),
            ).values(*_BATCH_COLUMNS)
        }
        raised = transform_findings(chunk, batches)
        if raised:
            with transaction.atomic():
                new += save_findings(raised)
        after = chunk[-1][0]


def sweep_ranges(size: int | None = None) -> list[tuple[int, int]]:
    """The log cut into ranges of ``size`` seqs (default SWEEP_RANGE), for sweeps that run
    on several workers at once."""
    size = size or SWEEP_RANGE
    head = LogRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
    if head is None:
        return []
    return [(a, min(a + size - 1, head)) for a in range(0, head + 1, size)]


# -- alerts ----------------------------------------------------------------------------------


def descendants_custodians(batch_ids: set[str]) -> set[int]:
    """Organisations that now hold material made from these batches (or the batches)."""
    seen = set(batch_ids)
    frontier = set(batch_ids)
    while frontier:
        children = set(
            EntryBatch.objects.filter(
                role=LinkRole.OUTPUT,
                record__links__role=LinkRole.INPUT,
                record__links__batch_id__in=frontier,
            ).values_list("batch_id", flat=True)
        )
        frontier = children - seen
        seen |= children
    return set(
        Batch.objects.filter(id__in=seen)
        .exclude(status=BatchStatus.DEPLETED)
        .values_list("custodian_id", flat=True)
    )


def recipients(flag: Flag) -> set[int]:
    """Organisations to alert about ``flag``: those it concerns and every holder of
    material downstream of its batches."""
    orgs = set(FlagOrganisation.objects.filter(flag=flag).values_list("organisation_id", flat=True))
    batch_ids = set(FlagBatch.objects.filter(flag=flag).values_list("batch_id", flat=True))
    return orgs | descendants_custodians(batch_ids)


def alert(flag_ids: Sequence[int], event: str, only: set[int] | None = None) -> None:
    """Queue a delivery of ``event`` for every active webhook of every organisation the
    flags concern (or of the organisations ``only``), then send them. Never raises:
    undelivered alerts are retried."""
    try:
        if not Webhook.objects.filter(active=True).exists():
            return  # nobody listens: skip working out the recipients
        created: list[int] = []
        with transaction.atomic():
            for flag in Flag.objects.filter(pk__in=flag_ids):
                orgs = only if only is not None else recipients(flag)
                hooks = Webhook.objects.filter(organisation_id__in=orgs, active=True)
                for hook in hooks:
                    delivery, made = Delivery.objects.get_or_create(
                        webhook=hook, flag=flag, event=event, defaults={"next_attempt_at": timezone.now()}
                    )
                    if made:
                        created.append(delivery.pk)
        if created:
            transaction.on_commit(lambda: _send_deliveries(created))
    except Exception:
        logger.exception("could not queue alerts for flags %s", list(flag_ids))


def _send_deliveries(ids: Sequence[int]) -> None:
    from checks.tasks import deliver

    for pk in ids:
        try:
            deliver.apply_async((pk,), retry=False)
        except Exception:
            logger.warning("could not enqueue delivery %s; retry_deliveries will send it", pk, exc_info=True)


def sign(body: bytes, secret: str) -> str:
    """The X-Ledger-Signature header value: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def backoff_seconds(attempts: int) -> int:
    """Delay before attempt ``attempts + 1``: 30 s, 1 min, 2 min ... capped at 1 hour (the
    base is LEDGER_WEBHOOK_BACKOFF_SECONDS)."""
    return int(min(3600, conf.webhook_backoff_seconds() * 2 ** max(0, attempts - 1)))


def deliver(delivery_id: int) -> Delivery | None:
    """Attempt one delivery if it is due: POST the flag, signed. Returns the delivery, or
    None when it is not due (delivered, given up, or claimed by another attempt)."""
    import httpx

    now = timezone.now()
    lease = now + timedelta(seconds=conf.webhook_timeout() * 2 + 5)
    claimed = Delivery.objects.filter(
        pk=delivery_id, delivered_at__isnull=True, next_attempt_at__lte=now
    ).update(next_attempt_at=lease)
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("webhook").get(pk=delivery_id)
    flag = with_details(Flag.objects.filter(pk=delivery.flag_id)).get()
    body = json.dumps(
        {
            "event": delivery.event,
            "delivery": delivery.pk,
            "sent_at": now.isoformat(),
            "flag": flag_document(flag),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "magnet-ledger-webhooks/1",
        "X-Ledger-Event": delivery.event,
        "X-Ledger-Delivery": str(delivery.pk),
        "X-Ledger-Signature": sign(body, delivery.webhook.secret),
    }
    status: int | None = None
    error = ""
    try:
        response = httpx.post(
            delivery.webhook.url, content=body, headers=headers, timeout=conf.webhook_timeout()
        )
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
    attempts = delivery.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
    if not error:
        fields.update(delivered_at=timezone.now(), next_attempt_at=None)
    elif attempts >= conf.webhook_max_attempts():
        fields.update(next_attempt_at=None)  # given up; visible in the deliveries list
    else:
        fields.update(next_attempt_at=timezone.now() + timedelta(seconds=backoff_seconds(attempts)))
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
    delivery.refresh_from_db()
    return delivery


def due_deliveries() -> list[int]:
    """Undelivered alerts whose next attempt is due (for the periodic retry)."""
    return list(
        Delivery.objects.filter(delivered_at__isnull=True, next_attempt_at__lte=timezone.now()).values_list(
            "pk", flat=True
        )[:1000]
    )


def create_webhook(organisation: Organisation, url: str, secret: str = "", active: bool = True) -> Webhook:
    """Register a webhook; a secret is generated when none is given (shown once)."""
    return Webhook.objects.create(
        organisation=organisation, url=url, secret=secret or secrets.token_urlsafe(32), active=active
    )
