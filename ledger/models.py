"""The log and the state derived from it: batches, shipments, links and access grants.

``LogRecord`` is the source of truth and is append-only. Everything else here is a
projection of the log, written in the same transaction as the records it derives from.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models
from django.db.models import Q

from accounts.models import Facility, Organisation


class EntryType(models.TextChoices):
    INTAKE = "intake"
    SHIP = "ship"
    RECEIVE = "receive"
    TRANSFORM = "transform"
    ASSAY = "assay"
    WRITE_OFF = "write_off"
    ATTEST = "attest"
    KEY_REGISTERED = "key_registered"
    KEY_REVOKED = "key_revoked"


class Material(models.TextChoices):
    EOL_PRODUCT = "eol_product"
    MAGNET_ASSEMBLY = "magnet_assembly"
    MAGNET_SCRAP = "magnet_scrap"
    SWARF = "swarf"
    ALLOY_POWDER = "alloy_powder"
    MIXED_REO = "mixed_reo"
    SEPARATED_OXIDE = "separated_oxide"
    METAL = "metal"
    ALLOY = "alloy"
    MAGNET = "magnet"
    RESIDUE = "residue"


class Process(models.TextChoices):
    DISMANTLING = "dismantling"
    SHREDDING = "shredding"
    HPMS = "hpms"
    HDDR = "hddr"
    LEACHING = "leaching"
    SOLVENT_EXTRACTION = "solvent_extraction"
    PRECIPITATION = "precipitation"
    CALCINATION = "calcination"
    REDUCTION = "reduction"
    ALLOYING = "alloying"
    STRIP_CASTING = "strip_casting"
    SINTERING = "sintering"
    MACHINING = "machining"
    SPLIT = "split"
    MERGE = "merge"


def _sees_everything(user: Any) -> bool:
    org = getattr(user, "organisation", None)
    return bool(getattr(user, "is_superuser", False) or (org is not None and org.role == "auditor"))


class AppendOnlyQuerySet(models.QuerySet["LogRecord"]):
    """Refuses bulk UPDATE and DELETE: the log is append-only (a PostgreSQL trigger
    refuses them too, for anything that bypasses the ORM)."""

    def visible_to(self, user: Any) -> AppendOnlyQuerySet:
        """The records ``user`` may read. DESIGN "Who sees what": an auditor everything;
        anyone else the entries of its own organisation, and an OEM also every entry on a
        batch in the pedigree of what it holds or held. Every lookup goes through here."""
        if _sees_everything(user):
            return self.all()
        org = getattr(user, "organisation", None)
        if org is None:
            return self.none()
        condition = Q(organisation=org)
        if org.role == "oem":
            # Entries that made or moved a batch of the pedigree. A transform that merely
            # consumed an upstream batch into another branch has only an input link to it, so
            # it stays hidden: the OEM sees where its material came from, not where the rest went.
            linked = EntryBatch.objects.filter(
                batch_id__in=Access.objects.filter(organisation=org).values("batch_id"),
                role__in=[LinkRole.OUTPUT, LinkRole.SUBJECT],
            ).values("record_id")
            condition |= Q(seq__in=linked)
        return self.filter(condition)

    def update(self, **kwargs: Any) -> int:
        raise TypeError("The log is append-only: records are never updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("The log is append-only: records are never deleted.")


class LogRecord(models.Model):
    """One record of the log, exactly as hashed.

    ``canonical`` holds JCS(record), the bytes whose leaf hash is ``leaf_hash``; the other
    columns are copies of fields inside it, for querying.
    """

    seq = models.BigIntegerField(primary_key=True)
    recorded_at = models.DateTimeField()
    prev = models.CharField(max_length=64)
    leaf_hash = models.CharField(max_length=64)
    canonical = models.TextField()
    entry_id = models.UUIDField(unique=True)
    entry_type = models.CharField(max_length=16, choices=EntryType.choices)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    key_id = models.CharField(max_length=64)
    payload_digest = models.CharField(max_length=64, help_text="SHA-256 of JCS(payload)")

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["organisation", "seq"]),
            models.Index(fields=["entry_type", "seq"]),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.entry_type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("The log is append-only: records are never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("The log is append-only: records are never deleted.")

    @property
    def record(self) -> dict[str, Any]:
        """The record as a JSON object: seq, recorded_at, prev, envelope."""
        parsed: dict[str, Any] = json.loads(self.canonical)
        return parsed

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.record["envelope"]["payload"]
        return payload


class BatchStatus(models.TextChoices):
    ACTIVE = "active"
    IN_TRANSIT = "in_transit"
    DEPLETED = "depleted"


class BatchQuerySet(models.QuerySet["Batch"]):
    def visible_to(self, user: Any) -> BatchQuerySet:
        """The batches ``user`` may see: those its organisation holds or held, and for an
        OEM their whole upstream (the Access grants). An auditor sees every batch."""
        if _sees_everything(user):
            return self.all()
        org = getattr(user, "organisation", None)
        if org is None:
            return self.none()
        return self.filter(pk__in=Access.objects.filter(organisation=org).values("batch_id"))


class Batch(models.Model):
    """A lot of material: its custodian, remaining mass, composition and origin split.

    ``origin`` holds the share of post-consumer, pre-consumer and primary material, for the
    total mass and per CRMA element (null where it cannot be known without an assay).
    """

    id = models.CharField(max_length=64, primary_key=True)
    material = models.CharField(max_length=24, choices=Material.choices)
    mass_g = models.BigIntegerField(help_text="mass when the batch entered the chain")
    remaining_g = models.BigIntegerField()
    composition = models.JSONField(null=True, blank=True, help_text="element -> ppm")
    composition_seq = models.BigIntegerField(null=True, blank=True)
    custodian = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="batches")
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="batches")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.ACTIVE)
    origin = models.JSONField()
    created_seq = models.BigIntegerField()
    updated_seq = models.BigIntegerField()

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["created_seq"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["custodian", "status"])]

    def __str__(self) -> str:
        return self.id


class Shipment(models.Model):
    """A batch in transit from one organisation to another, closed by a ``receive``."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="shipments")
    ship_seq = models.BigIntegerField(unique=True)
    sender = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    recipient = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    recipient_facility = models.ForeignKey(
        Facility, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    mass_g = models.BigIntegerField()
    shipped_at = models.DateTimeField()
    receive_seq = models.BigIntegerField(null=True, blank=True, unique=True)
    received_mass_g = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ship_seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch"], condition=Q(receive_seq__isnull=True), name="one_open_shipment_per_batch"
            )
        ]

    def __str__(self) -> str:
        return f"{self.batch_id} {self.sender_id}->{self.recipient_id}"


class LinkRole(models.TextChoices):
    INPUT = "input"
    OUTPUT = "output"
    SUBJECT = "subject"


class EntryBatch(models.Model):
    """Which batches an entry touches, and how: the index behind batch filters, pedigree
    walks (a batch's parents are the inputs of the entry that output it) and visibility."""

    record = models.ForeignKey(LogRecord, on_delete=models.PROTECT, related_name="links")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="links")
    role = models.CharField(max_length=8, choices=LinkRole.choices)
    mass_g = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["batch", "role"])]
        constraints = [models.UniqueConstraint(fields=["record", "batch", "role"], name="entry_batch_unique")]

    def __str__(self) -> str:
        return f"#{self.record_id} {self.role} {self.batch_id}"


class AccessVia(models.TextChoices):
    CUSTODY = "custody"
    PEDIGREE = "pedigree"


class Access(models.Model):
    """An organisation may see a batch: it holds or held it, or (for an OEM) the batch is
    upstream of one it holds or held. A batch's ancestry is fixed when it is created, so a
    grant made at custody time stays right forever."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="+")
    via = models.CharField(max_length=8, choices=AccessVia.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "batch"], name="access_unique")]

    def __str__(self) -> str:
        return f"{self.organisation_id} sees {self.batch_id} ({self.via})"


class MerkleNode(models.Model):
    """A perfect node of the log's RFC 9162 Merkle tree above the leaves: the root of the
    ``2**level`` leaves starting at leaf ``index * 2**level``, as lowercase hex.

    Level 0 (the leaves) is ``LogRecord.leaf_hash`` with ``seq == index`` and is not copied
    here. A perfect node never changes once its leaves exist, so ledger.transparency writes
    each once, when it integrates the leaves into a checkpoint, and serves every inclusion
    or consistency proof from O(log n) of them. Its primary key is set, never generated:
    ``index * 64 + level`` (``transparency.node_key``), so a proof's nodes are one
    ``pk IN (...)`` lookup.
    """

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="merkle_node_position_unique"),
            models.CheckConstraint(condition=Q(level__gte=1), name="merkle_node_above_leaves"),
        ]

    def __str__(self) -> str:
        return f"node({self.level}, {self.index})"


class Checkpoint(models.Model):
    """A signed tree head the service published: the C2SP checkpoint note over the first
    ``size`` records, whose Merkle root is ``root`` (hex). Every checkpoint is kept, so an
    auditor can ask for a consistency proof between any two it has seen."""

    size = models.BigIntegerField(unique=True)
    root = models.CharField(max_length=64)
    note = models.TextField(help_text="the signed note, exactly as served")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["size"]

    def __str__(self) -> str:
        return f"checkpoint {self.size}"
